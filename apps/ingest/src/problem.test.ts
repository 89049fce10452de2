import { GladlyConversationEvent } from '@gk/domain';
import { describe, expect, it } from 'vitest';
import { fieldErrors, problemFromError, problems } from './problem.js';

describe('fieldErrors', () => {
  it('names the offending field with its dotted path', () => {
    const result = GladlyConversationEvent.safeParse({
      id: 'e1',
      type: 'CONVERSATION/CREATED',
      timestamp: '2026-11-20T14:03:27.512Z',
      content: { conversationId: 'c1' },
    });
    if (result.success) throw new Error('expected a failure');
    expect(fieldErrors(result.error)).toEqual([{ field: 'content.customerId', message: expect.any(String) }]);
  });

  it('says (body) when the body as a whole is wrong', () => {
    const result = GladlyConversationEvent.safeParse([]);
    if (result.success) throw new Error('expected a failure');
    expect(fieldErrors(result.error)[0]?.field).toBe('(body)');
  });

  it('never repeats the value that was sent', () => {
    const result = GladlyConversationEvent.safeParse({
      id: 'e1',
      type: 'CONVERSATION/CREATED',
      timestamp: 'rosa@example.com',
      content: { customerId: 'x', conversationId: 'y' },
    });
    if (result.success) throw new Error('expected a failure');
    expect(JSON.stringify(problems.invalidPayload(fieldErrors(result.error)))).not.toContain('rosa@');
  });
});

describe('problemFromError', () => {
  const bodyParserError = (type: string, status: number, message = 'x') =>
    Object.assign(new Error(message), { type, status, statusCode: status, expose: true, limit: 65536 });

  it.each([
    ['entity.too.large', 413, 413],
    ['entity.parse.failed', 400, 400],
    ['charset.unsupported', 415, 415],
    ['encoding.unsupported', 415, 415],
    ['request.aborted', 400, 400],
    ['request.size.invalid', 400, 400],
  ])('%s → %i', (type, status, expected) => {
    const problem = problemFromError(bodyParserError(type, status));
    expect(problem.status).toBe(expected);
    expect(problem.title).toBeTruthy();
    expect(problem.type).toBeTruthy();
  });

  it('does not pass on the parser message (it quotes the body)', () => {
    const problem = problemFromError(
      bodyParserError('entity.parse.failed', 400, 'Unexpected token in "rosa@example.com"'),
    );
    expect(JSON.stringify(problem)).not.toContain('rosa');
    expect(problem.detail).toBe('The body is not valid JSON.');
  });

  it('turns anything unknown into a 500 without the message or stack', () => {
    const problem = problemFromError(new Error('connection string redis://:hunter2@db'));
    expect(problem.status).toBe(500);
    expect(JSON.stringify(problem)).not.toContain('hunter2');
    expect(JSON.stringify(problem)).not.toContain('at ');
    expect(problemFromError('a string').status).toBe(500);
    expect(problemFromError(null).status).toBe(500);
  });

  it('states the size limit in a 413', () => {
    expect(problemFromError(bodyParserError('entity.too.large', 413)).detail).toContain('65536');
  });
});
