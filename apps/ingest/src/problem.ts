import type { Response } from 'express';
import type { z } from 'zod';

/** RFC 9457 problem details, the body of every error answer. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemFieldError {
  /** Dotted path into the JSON body (`content.customerId`), or `(body)` for the body as a whole. */
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: ProblemFieldError[];
}

const problemType = (slug: string) => `urn:gk:problem:${slug}`;

/** The problems the ingest answers with; details are fixed text, never an echo of the input. */
export const problems = {
  unauthorized: (): Problem => ({
    type: problemType('unauthorized'),
    title: 'Unauthorized',
    status: 401,
    detail: 'Missing or invalid credentials.',
  }),
  unsupportedMediaType: (): Problem => ({
    type: problemType('unsupported-media-type'),
    title: 'Unsupported Media Type',
    status: 415,
    detail: 'The body must be JSON (Content-Type: application/json, UTF-8).',
  }),
  tooLarge: (limitBytes: number): Problem => ({
    type: problemType('payload-too-large'),
    title: 'Content Too Large',
    status: 413,
    detail: `The body is larger than ${limitBytes} bytes.`,
  }),
  malformedJson: (): Problem => ({
    type: problemType('malformed-json'),
    title: 'Bad Request',
    status: 400,
    detail: 'The body is not valid JSON.',
  }),
  badRequest: (detail: string): Problem => ({
    type: problemType('bad-request'),
    title: 'Bad Request',
    status: 400,
    detail,
  }),
  invalidPayload: (errors: ProblemFieldError[]): Problem => ({
    type: problemType('invalid-payload'),
    title: 'Bad Request',
    status: 400,
    detail: `The payload is not a valid Gladly webhook event: ${errors.map((e) => e.field).join(', ')}.`,
    errors,
  }),
  unavailable: (): Problem => ({
    type: problemType('unavailable'),
    title: 'Service Unavailable',
    status: 503,
    detail: 'The event could not be stored right now; it was not accepted. Retry later.',
  }),
  methodNotAllowed: (allow: string): Problem => ({
    type: 'about:blank',
    title: 'Method Not Allowed',
    status: 405,
    detail: `Use ${allow}.`,
  }),
  notFound: (): Problem => ({
    type: 'about:blank',
    title: 'Not Found',
    status: 404,
    detail: 'No such resource.',
  }),
  internal: (): Problem => ({
    type: 'about:blank',
    title: 'Internal Server Error',
    status: 500,
    detail: 'Something went wrong on our side.',
  }),
};

const MAX_FIELD_ERRORS = 20;

/** zod issues as `{field, message}`: the field is the dotted path, the message never holds the value. */
export function fieldErrors(error: z.ZodError): ProblemFieldError[] {
  return error.issues.slice(0, MAX_FIELD_ERRORS).map((issue) => ({
    field: issue.path.length > 0 ? issue.path.map(String).join('.') : '(body)',
    message: issue.message,
  }));
}

interface HttpLikeError {
  status?: unknown;
  statusCode?: unknown;
  type?: unknown;
  limit?: unknown;
}

/**
 * Maps an error thrown while reading a body (Express's body-parser: `entity.too.large`,
 * `entity.parse.failed`, `charset.unsupported`, …) or anything else to a problem. Parser
 * messages are not passed on: JSON.parse quotes the body, which may hold an email address.
 */
export function problemFromError(err: unknown): Problem {
  const e = (typeof err === 'object' && err !== null ? err : {}) as HttpLikeError;
  const status =
    typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 500;
  switch (e.type) {
    case 'entity.too.large':
      return problems.tooLarge(typeof e.limit === 'number' ? e.limit : 0);
    case 'entity.parse.failed':
      return problems.malformedJson();
    case 'charset.unsupported':
    case 'encoding.unsupported':
      return problems.unsupportedMediaType();
    case 'request.aborted':
      return problems.badRequest('The request body ended early.');
    case 'request.size.invalid':
      return problems.badRequest('The body length does not match Content-Length.');
  }
  if (status === 413) return problems.tooLarge(typeof e.limit === 'number' ? e.limit : 0);
  if (status === 415) return problems.unsupportedMediaType();
  if (status >= 400 && status < 500) return problems.badRequest('The request could not be read.');
  return problems.internal();
}

export function sendProblem(res: Response, problem: Problem, headers: Record<string, string> = {}): void {
  res.status(problem.status).set(headers).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}
