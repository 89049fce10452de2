import { z } from 'zod';
import { type KlaviyoErrorObject, klaviyoError } from './klaviyo-validation.js';

/**
 * Rules of Klaviyo's OpenAPI description (revision 2026-07-15) for the account endpoints the
 * bridge's set-up uses, written out for the stand-in: Create Segment's `SegmentCreateQuery`,
 * Get Segments' query parameters, and key scopes.
 */

/** Every scope a Klaviyo private key can hold that the stand-in knows of. */
export const KLAVIYO_SCOPES = [
  'events:read',
  'events:write',
  'metrics:read',
  'metrics:write',
  'profiles:read',
  'profiles:write',
  'segments:read',
  'segments:write',
] as const;

/**
 * Whether a key with `scopes` may use an endpoint needing `needed`: null = a full-access key.
 * In Klaviyo's key settings "full access" to a resource (`x:write`) includes read access.
 */
export function hasScope(scopes: ReadonlySet<string> | null, needed: string): boolean {
  if (scopes === null || scopes.has(needed)) return true;
  return needed.endsWith(':read') && scopes.has(needed.replace(/:read$/, ':write'));
}

export function missingScopeError(needed: string): KlaviyoErrorObject {
  return klaviyoError(
    403,
    'permission_denied',
    'You do not have permission to perform this action.',
    `This API key is missing the required scope: ${needed}.`,
  );
}

/** The condition types ConditionGroup's `oneOf` lists. */
const CONDITION_TYPES = new Set([
  'profile-group-membership',
  'profile-metric',
  'profile-marketing-consent',
  'profile-postal-code-distance',
  'profile-property',
  'profile-region',
  'profile-predictive-analytics',
  'profile-has-custom-object',
  'profile-permissions',
  'profile-metric-funnel',
]);

/** BooleanFilter, StringOperatorStringFilter and ExistenceOperatorExistenceFilter. */
const ProfilePropertyFilter = z.discriminatedUnion('type', [
  z.object({ type: z.literal('boolean'), operator: z.literal('equals'), value: z.boolean() }),
  z.object({
    type: z.literal('string'),
    operator: z.enum([
      'contains',
      'ends-with',
      'equals',
      'not-contains',
      'not-ends-with',
      'not-equals',
      'not-starts-with',
      'nregex',
      'regex',
      'starts-with',
    ]),
    value: z.string().nullable(),
  }),
  z.object({ type: z.literal('existence'), operator: z.enum(['is-set', 'not-set']) }),
]);

const ProfilePropertyCondition = z.object({
  type: z.literal('profile-property'),
  property: z.string(),
  filter: ProfilePropertyFilter,
});

const SegmentDefinition = z.object({
  condition_groups: z.array(z.object({ conditions: z.array(z.unknown()) })),
});

const SegmentCreateQuery = z.object({
  data: z.object({
    type: z.literal('segment'),
    attributes: z.object({
      name: z.string(),
      definition: SegmentDefinition,
      is_starred: z.boolean().nullable().optional(),
    }),
  }),
});

export interface SegmentInput {
  name: string;
  definition: z.infer<typeof SegmentDefinition>;
  isStarred: boolean;
}

const invalid = (detail: string, pointer: string) =>
  klaviyoError(400, 'invalid', 'Invalid input.', detail, { pointer });

/**
 * Validates a Create Segment body. Every condition must have one of the types Klaviyo lists;
 * `profile-property` conditions are checked in full (boolean, string and existence filters).
 * Other condition types are refused as unsupported by the stand-in rather than accepted unchecked.
 */
export function validateCreateSegment(
  body: unknown,
): { ok: true; segment: SegmentInput } | { ok: false; errors: KlaviyoErrorObject[] } {
  const parsed = SegmentCreateQuery.safeParse(body);
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues
        .slice(0, 5)
        .map((issue) => invalid(issue.message, `/${issue.path.join('/')}`)),
    };
  }
  const { name, definition, is_starred } = parsed.data.data.attributes;
  const errors: KlaviyoErrorObject[] = [];
  if (name.trim() === '') errors.push(invalid('A segment name is required.', '/data/attributes/name'));
  if (definition.condition_groups.length === 0) {
    errors.push(invalid('At least one condition group is required.', '/data/attributes/definition'));
  }
  definition.condition_groups.forEach((group, g) => {
    if (group.conditions.length === 0) {
      errors.push(
        invalid('A condition group needs a condition.', `/data/attributes/definition/condition_groups/${g}`),
      );
    }
    group.conditions.forEach((condition, c) => {
      const pointer = `/data/attributes/definition/condition_groups/${g}/conditions/${c}`;
      const type = (condition as { type?: unknown } | null)?.type;
      if (typeof type !== 'string' || !CONDITION_TYPES.has(type)) {
        errors.push(invalid(`Unknown condition type ${JSON.stringify(type)}.`, `${pointer}/type`));
        return;
      }
      if (type !== 'profile-property') {
        errors.push(invalid(`The stand-in does not model '${type}' conditions.`, `${pointer}/type`));
        return;
      }
      const checked = ProfilePropertyCondition.safeParse(condition);
      if (!checked.success) {
        const issue = checked.error.issues[0];
        errors.push(
          invalid(issue?.message ?? 'invalid condition', `${pointer}/${issue?.path.join('/') ?? ''}`),
        );
      }
    });
  });
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, segment: { name, definition, isStarred: is_starred ?? false } };
}

export type SegmentQuery =
  | { ok: true; name: string | null; pageSize: number; offset: number }
  | { ok: false; error: KlaviyoErrorObject };

/** `equals(name,"…")` or `equals(name,'…')`, backslash escapes inside. */
const NAME_FILTER = /^equals\(name,(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\)$/;

/**
 * Get Segments' query: `filter` (this stand-in models `equals(name,…)`), `page[size]` 1–10
 * (default 10), `page[cursor]` (an offset here).
 */
export function parseSegmentQuery(params: URLSearchParams): SegmentQuery {
  let name: string | null = null;
  const filter = params.get('filter');
  if (filter !== null) {
    const match = NAME_FILTER.exec(filter.trim());
    if (!match) {
      return {
        ok: false,
        error: klaviyoError(
          400,
          'invalid',
          'Invalid input.',
          'This stand-in supports filter=equals(name,"…") only.',
          {
            parameter: 'filter',
          },
        ),
      };
    }
    name = (match[1] ?? match[2] ?? '').replace(/\\(.)/g, '$1');
  }
  const sizeParam = params.get('page[size]');
  const pageSize = sizeParam === null ? 10 : Number(sizeParam);
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 10) {
    return {
      ok: false,
      error: klaviyoError(
        400,
        'invalid',
        'Invalid input.',
        'page[size] must be an integer between 1 and 10.',
        {
          parameter: 'page[size]',
        },
      ),
    };
  }
  const cursor = params.get('page[cursor]');
  const offset = cursor === null ? 0 : Number(cursor);
  if (!Number.isInteger(offset) || offset < 0) {
    return {
      ok: false,
      error: klaviyoError(400, 'invalid', 'Invalid input.', 'Invalid page cursor.', {
        parameter: 'page[cursor]',
      }),
    };
  }
  return { ok: true, name, pageSize, offset };
}
