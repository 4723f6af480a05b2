/**
 * What a route's zod schema is shown of a request body. zod checks every element of a list,
 * and in a union once per branch, with an issue for each element that fails: a body of a few
 * MB (a few KB gzipped) holding millions of wrong elements took gigabytes of memory and tens
 * of seconds to refuse. No request takes a string, boolean, null or object among its
 * numbers, a list nested deeper than rows, a number where rows go (W, x), a row where
 * numbers go (b, /init's layers, a tensor's shape), or numbers and rows mixed (y), so such
 * an element is wrong wherever it is. A body holding more than WRONG_ELEMENTS_SHOWN of them is
 * shown cut short after the first one in each list: it fails on the same first elements, at
 * once. Every list cut keeps its wrong element, so the cut body fails whenever the whole
 * one would, and a body with none is shown whole. Lists of objects (params) and of integers
 * (/init's layers, a tensor's shape) are bounded by their schemas instead (schemas.ts).
 */

const WRONG_ELEMENTS_SHOWN = 64;

/** Where a list sits: a field's value (numbers, or rows of numbers), or params (layers). */
type ListKind = 'field' | 'params';

/** The body itself, or, when it holds many wrong elements, a copy cut short after the first of each list. */
export function validationView(body: unknown): unknown {
  return visitObject(body, 0, false).wrong > WRONG_ELEMENTS_SHOWN ? visitObject(body, 0, true).value : body;
}

/**
 * A route's validation of `body`, run on what validationView shows of it. A cut body keeps a
 * wrong element in every list it cuts, so it cannot pass; if it ever did, its value would be
 * the cut one, so that is an internal error, never an answer.
 */
export function validateShown<R extends { error?: unknown }>(validate: (data: unknown) => R, body: unknown): R {
  const shown = validationView(body);
  const result = validate(shown);
  if (shown !== body && !result.error) throw new Error('a request body cut short for validation passed it');
  return result;
}

/** What a visit found: how many wrong elements, and the value (cut, when cutting). */
interface Seen {
  wrong: number;
  value: unknown;
}

export const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Fields that take rows, and fields that take numbers; y (and a misspelt field) takes either, unmixed. */
const ROWS_FIELDS = new Set(['W', 'x']);
const NUMBERS_FIELDS = new Set(['b', 'layers', 'shape']);

const notNumber = (e: unknown) => typeof e !== 'number';
const notRow = (e: unknown) => !Array.isArray(e);
const notObject = (e: unknown) => !isObject(e);
const notLikeFirst = (list: unknown[]) => (typeof list[0] === 'number' ? notNumber : Array.isArray(list[0]) ? notRow : () => true);

/** The test of whether an element of `list`, a list of this kind in field `key`, is wrong in itself (its contents aside). */
function wrongElementTest(list: unknown[], kind: ListKind, key: string): (element: unknown) => boolean {
  if (kind === 'params') return notObject;
  if (NUMBERS_FIELDS.has(key)) return notNumber;
  if (ROWS_FIELDS.has(key)) return notRow;
  return notLikeFirst(list); // y: all numbers, or all rows
}

/**
 * The lists of an object, and of the objects it holds down to depth 2: the body (depth 0),
 * its tensors, its optimizer and its layers (1), a layer's tensors (2).
 */
function visitObject(value: unknown, depth: number, cut: boolean): Seen {
  if (!isObject(value)) return { wrong: 0, value };
  let wrong = 0;
  let copy: Record<string, unknown> | undefined;
  for (const key in value) {
    const field = value[key];
    let seen: Seen | undefined;
    if (Array.isArray(field)) seen = visitList(field, depth === 0 && key === 'params' ? 'params' : 'field', key, cut);
    else if (depth < 2 && isObject(field)) seen = visitObject(field, depth + 1, cut);
    if (!seen) continue;
    wrong += seen.wrong;
    if (seen.value !== field) {
      copy ??= { ...value };
      copy[key] = seen.value;
    }
  }
  return { wrong, value: copy ?? value };
}

/** A list's wrong elements, its rows' and its layers'; when cutting, it ends at the first element that is or holds one. */
function visitList(list: unknown[], kind: ListKind, key: string, cut: boolean): Seen {
  const isWrong = wrongElementTest(list, kind, key);
  let wrong = 0;
  for (let i = 0; i < list.length; i++) {
    const element = list[i];
    let inner: unknown = element;
    if (isWrong(element)) wrong++;
    else if (Array.isArray(element)) {
      // a row: numbers only (counted without a Seen per row: x has up to 65536 of them)
      const before = wrong;
      for (let j = 0; j < element.length; j++) if (typeof element[j] !== 'number') wrong++;
      if (cut && wrong > before) inner = element.slice(0, element.findIndex(notNumber) + 1);
    } else if (kind === 'params') {
      const layer = visitObject(element, 1, cut);
      wrong += layer.wrong;
      inner = layer.value;
    }
    if (cut && wrong > 0) return { wrong, value: [...list.slice(0, i), inner] };
  }
  return { wrong, value: list };
}
