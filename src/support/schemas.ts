import { z } from 'zod';
import { AppError } from '../errors';
import { isIdString } from './ids';

/**
 * Schemas and parsing shared by the HTTP layer and the domain (the payment provider's callback,
 * messages): one meaning of "an id" and "an amount of cents", one way to say what is wrong.
 */

/** Ids travel as decimal strings (they may exceed 2^53). */
export const idString = z.string().refine(isIdString, 'must be an id: a string of digits');

export const cents = (max: number) => z.number().int('must be a whole number of cents').min(0).max(max);

/** Parses `input` or throws VALIDATION_FAILED naming every bad field. */
export function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  if (input === undefined || input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new AppError('VALIDATION_FAILED', 'the body must be a JSON object (Content-Type: application/json)');
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({ field: fieldOf(issue), message: messageOf(issue) }));
  throw new AppError('VALIDATION_FAILED', issues.map((i) => `${i.field}: ${i.message}`).join('; '), { issues });
}

const fieldOf = (issue: z.core.$ZodIssue, prefix: PropertyKey[] = []) => [...prefix, ...issue.path].map(String).join('.') || '(body)';

/** An issue in words; a union that no form matches says what each form lacked (zod says "Invalid input"). */
function messageOf(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`;
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const forms = issue.errors.map((branch, i) => `(${i + 1}) ${branch.map((b) => `${fieldOf(b, issue.path)}: ${messageOf(b)}`).join(', ')}`);
    return `matches none of the accepted forms: ${forms.join('; ')}`;
  }
  return issue.message;
}
