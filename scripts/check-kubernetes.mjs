#!/usr/bin/env node
// Checks deploy/kubernetes/ without a cluster (run by CI):
//   1. renders the kustomize base and every overlay. kustomize is not packaged here, so this
//      renders the subset of kustomize the manifests use (resources, namespace, images,
//      literal config/secret generators without name hashes, strategic-merge patches by kind and
//      name) and refuses any other field rather than render it differently from kustomize;
//   2. validates every manifest against the Kubernetes schemas (kubernetes-models, and the
//      Prometheus Operator's for the ServiceMonitor);
//   3. checks that every variable a service reads (the keys of the zod schemas in
//      apps/*/src/config.ts and packages/runtime/src/env.ts) is set or referenced in its
//      container: env, or a key of a ConfigMap it takes with envFrom;
//   4. cross-references: selectors find their pods, named ports exist, referenced ConfigMaps and
//      (where rendered) Secret keys exist.
// `node scripts/check-kubernetes.mjs --render <dir>` prints what a directory renders to.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEPLOY = join(ROOT, 'deploy', 'kubernetes');
const KUSTOMIZATION_KEYS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'images',
  'generatorOptions',
  'secretGenerator',
  'configMapGenerator',
  'patches',
]);
/** Kinds that live in no namespace (kustomize's `namespace` leaves them alone). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
]);

const clone = (value) => structuredClone(value);
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

function readYaml(file) {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${relative(ROOT, file)}: ${doc.errors[0].message}`);
  }
  return docs.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
}

/** A strategic-merge patch as kustomize applies it to these manifests: lists of named items merge by name. */
function mergePatch(target, patch) {
  if (!isObject(target) || !isObject(patch)) return clone(patch);
  const out = clone(target);
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else if (
      Array.isArray(value) &&
      Array.isArray(out[key]) &&
      value.every((v) => isObject(v) && 'name' in v)
    ) {
      const merged = out[key].map((item) => {
        const match = value.find((v) => v.name === item.name);
        return match ? mergePatch(item, match) : item;
      });
      for (const v of value) if (!merged.some((item) => item.name === v.name)) merged.push(clone(v));
      out[key] = merged;
    } else out[key] = isObject(value) ? mergePatch(out[key], value) : clone(value);
  }
  return out;
}

function podSpecs(resource) {
  if (resource.kind === 'Pod') return [resource.spec];
  const template = resource.spec?.template?.spec;
  return template ? [template] : [];
}

function containersOf(resource) {
  return podSpecs(resource).flatMap((spec) => [...(spec.initContainers ?? []), ...(spec.containers ?? [])]);
}

function generated(kind, generator, options) {
  const unknown = Object.keys(generator).filter((k) => !['name', 'literals', 'type'].includes(k));
  if (unknown.length > 0)
    throw new Error(`${kind} generator ${generator.name}: unsupported ${unknown.join(', ')}`);
  if (options?.disableNameSuffixHash !== true) {
    throw new Error(
      `${kind} generator ${generator.name}: set generatorOptions.disableNameSuffixHash (name hashes are not rendered here)`,
    );
  }
  const entries = (generator.literals ?? []).map((literal) => {
    const eq = literal.indexOf('=');
    if (eq <= 0) throw new Error(`${kind} generator ${generator.name}: literal without "="`);
    return [literal.slice(0, eq), literal.slice(eq + 1)];
  });
  const resource = { apiVersion: 'v1', kind, metadata: { name: generator.name } };
  if (kind === 'Secret') {
    resource.type = generator.type ?? 'Opaque';
    resource.data = Object.fromEntries(entries.map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  } else resource.data = Object.fromEntries(entries);
  return resource;
}

/** Renders a kustomization directory to its list of resources. */
export function render(dir) {
  const file = join(dir, 'kustomization.yaml');
  const [k] = readYaml(file);
  const unknown = Object.keys(k).filter((key) => !KUSTOMIZATION_KEYS.has(key));
  if (unknown.length > 0)
    throw new Error(`${relative(ROOT, file)}: not rendered here: ${unknown.join(', ')}`);
  let resources = [];
  for (const entry of k.resources ?? []) {
    const path = join(dir, entry);
    resources.push(...(statSync(path).isDirectory() ? render(path) : readYaml(path)));
  }
  for (const g of k.configMapGenerator ?? []) resources.push(generated('ConfigMap', g, k.generatorOptions));
  for (const g of k.secretGenerator ?? []) resources.push(generated('Secret', g, k.generatorOptions));
  for (const p of k.patches ?? []) {
    if (!p.path || Object.keys(p).length !== 1)
      throw new Error(`${relative(ROOT, file)}: patches: only { path } is rendered here`);
    for (const patch of readYaml(join(dir, p.path))) {
      const index = resources.findIndex(
        (r) => r.kind === patch.kind && r.metadata?.name === patch.metadata?.name,
      );
      if (index < 0)
        throw new Error(
          `${relative(ROOT, file)}: patch ${p.path} matches no ${patch.kind} ${patch.metadata?.name}`,
        );
      resources[index] = mergePatch(resources[index], patch);
    }
  }
  for (const image of k.images ?? []) {
    for (const r of resources) {
      for (const c of containersOf(r)) {
        const name = c.image.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
        if (name !== image.name) continue;
        c.image = `${image.newName ?? name}${image.digest ? `@${image.digest}` : `:${image.newTag ?? 'latest'}`}`;
      }
    }
  }
  if (k.namespace) {
    resources = resources.map((r) =>
      CLUSTER_SCOPED.has(r.kind) ? r : { ...r, metadata: { ...r.metadata, namespace: k.namespace } },
    );
  }
  return resources;
}

/** The kubernetes-models class for a manifest, by apiVersion and kind. */
async function modelFor(resource) {
  const [group, version] = resource.apiVersion.includes('/')
    ? resource.apiVersion.split('/')
    : [null, resource.apiVersion];
  const module =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${resource.kind}`
      : `kubernetes-models/${group ? `${group}/` : ''}${version}/${resource.kind}`;
  const loaded = await import(module).catch(() => null);
  const Model = loaded?.[resource.kind] ?? loaded?.default?.[resource.kind];
  if (!Model) throw new Error(`no schema for ${resource.apiVersion} ${resource.kind}`);
  return Model;
}

/** The env vars each service reads: the keys of its zod schemas. */
function varsRead(app) {
  const keys = (file) =>
    [...readFileSync(join(ROOT, file), 'utf8').matchAll(/^\s+([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]);
  const own = keys(`apps/${app}/src/config.ts`);
  return new Set(app === 'sandbox' ? own : [...own, ...keys('packages/runtime/src/env.ts')]);
}

const matches = (selector, labels) =>
  Object.entries(selector?.matchLabels ?? selector ?? {}).every(([k, v]) => labels?.[k] === v) &&
  (selector?.matchExpressions ?? []).every((e) =>
    e.operator === 'In'
      ? e.values.includes(labels?.[e.key])
      : e.operator === 'Exists'
        ? e.key in (labels ?? {})
        : true,
  );

async function check(name, resources) {
  const problems = [];
  const say = (message) => problems.push(`${name}: ${message}`);
  const find = (kind, resourceName) =>
    resources.find((r) => r.kind === kind && r.metadata?.name === resourceName);
  const workloads = resources.filter((r) => podSpecs(r).length > 0);

  for (const r of resources) {
    const id = `${r.kind} ${r.metadata?.name}`;
    try {
      new (await modelFor(r))(r).validate();
    } catch (err) {
      say(`${id}: ${err.message.split('\n').slice(0, 5).join('; ')}`);
    }
  }

  for (const w of workloads) {
    const podLabels = w.spec.template?.metadata?.labels;
    if (w.spec.selector && !matches(w.spec.selector, podLabels))
      say(`${w.kind} ${w.metadata.name}: selector does not match its pods`);
    for (const c of containersOf(w)) {
      const where = `${w.kind} ${w.metadata.name}, container ${c.name}`;
      const portNames = new Set((c.ports ?? []).map((p) => p.name));
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const port = c[probe]?.httpGet?.port;
        if (typeof port === 'string' && !portNames.has(port))
          say(`${where}: ${probe} uses an unknown port ${port}`);
      }
      const set = new Set((c.env ?? []).map((e) => e.name));
      for (const from of c.envFrom ?? []) {
        if (from.configMapRef) {
          const cm = find('ConfigMap', from.configMapRef.name);
          if (!cm) say(`${where}: envFrom names a ConfigMap ${from.configMapRef.name} that is not rendered`);
          for (const key of Object.keys(cm?.data ?? {})) set.add(key);
        } else say(`${where}: envFrom other than configMapRef is not checked here`);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        const secret = ref && find('Secret', ref.name);
        if (
          secret &&
          !ref.optional &&
          !(ref.key in (secret.data ?? {}) || ref.key in (secret.stringData ?? {}))
        ) {
          say(`${where}: ${e.name} references key ${ref.key}, which Secret ${ref.name} does not have`);
        }
      }
      const app = /apps\/(\w+)\/dist\/main\.js/.exec((c.command ?? []).concat(c.args ?? []).join(' '))?.[1];
      if (!app) continue;
      // The schemas accept unknown fields, so a misspelt probe would pass: require them by name.
      for (const field of ['readinessProbe', 'livenessProbe']) {
        if (app !== 'sandbox' && !c[field]) say(`${where}: no ${field}`);
      }
      if (!c.resources?.requests?.memory || !c.resources?.requests?.cpu)
        say(`${where}: no cpu and memory requests`);
      const missing = [...varsRead(app)].filter((v) => !set.has(v));
      if (missing.length > 0)
        say(`${where}: variables ${app} reads, neither set nor referenced: ${missing.join(', ')}`);
    }
  }

  for (const s of resources.filter((r) => r.kind === 'Service')) {
    const pods = workloads.filter(
      (w) =>
        w.metadata.namespace === s.metadata.namespace &&
        matches(s.spec.selector, w.spec.template?.metadata?.labels),
    );
    if (pods.length === 0) say(`Service ${s.metadata.name}: its selector matches no pods`);
    for (const port of s.spec.ports ?? []) {
      if (typeof port.targetPort !== 'string') continue;
      if (
        !pods.some((w) =>
          containersOf(w).some((c) => (c.ports ?? []).some((p) => p.name === port.targetPort)),
        )
      ) {
        say(`Service ${s.metadata.name}: targetPort ${port.targetPort} is no named port of its pods`);
      }
    }
  }
  for (const pdb of resources.filter((r) => r.kind === 'PodDisruptionBudget')) {
    if (!workloads.some((w) => matches(pdb.spec.selector, w.spec.template?.metadata?.labels))) {
      say(`PodDisruptionBudget ${pdb.metadata.name}: its selector matches no pods`);
    }
  }
  for (const sm of resources.filter((r) => r.kind === 'ServiceMonitor')) {
    const services = resources.filter(
      (r) => r.kind === 'Service' && matches(sm.spec.selector, r.metadata.labels),
    );
    if (services.length === 0) say(`ServiceMonitor ${sm.metadata.name}: selects no Service`);
    for (const endpoint of sm.spec.endpoints ?? []) {
      if (!services.some((s) => (s.spec.ports ?? []).some((p) => p.name === endpoint.port))) {
        say(`ServiceMonitor ${sm.metadata.name}: no selected Service has a port named ${endpoint.port}`);
      }
    }
  }
  return problems;
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--render') {
    const docs = render(resolve(args[1] ?? join(DEPLOY, 'base')));
    process.stdout.write(docs.map((d) => stringify(d)).join('---\n'));
    return;
  }
  const overlays = join(DEPLOY, 'overlays');
  const dirs = [join(DEPLOY, 'base'), ...readdirSync(overlays).map((d) => join(overlays, d))];
  let failed = false;
  for (const dir of dirs) {
    const name = relative(ROOT, dir);
    try {
      const resources = render(dir);
      const problems = await check(name, resources);
      for (const p of problems) process.stdout.write(`check-kubernetes: ${p}\n`);
      if (problems.length > 0) failed = true;
      else {
        const kinds = resources.map((r) => r.kind).sort();
        process.stdout.write(
          `check-kubernetes: ok: ${name}: ${kinds.length} manifests valid (${[...new Set(kinds)].join(', ')}), every variable set or referenced\n`,
        );
      }
    } catch (err) {
      process.stdout.write(`check-kubernetes: ${name}: ${err.message}\n`);
      failed = true;
    }
  }
  process.exit(failed ? 1 : 0);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
