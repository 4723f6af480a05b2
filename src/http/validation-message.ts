import { FIELDS_AT, isPostRoute } from './schemas.js';
import { isPytorchWeight, meantField, meantOption, PYTORCH_WEIGHT } from './suggest.js';
import { FLOAT32_RANGE } from './tensors.js';
import { isObject } from './validation-view.js';

/**
 * zod's issues with a request body, as the one message of its 400: each names its field
 * (`params[1].W`) and says what is wrong in the client's terms, a union's failure as the form
 * the client evidently meant, a name spelt as another library spells it with the one it means.
 */

/** How answers write values that are not finite (JSON has no NaN or Infinity). */
const NON_FINITE_STRINGS = ['NaN', 'Infinity', '-Infinity'];

/** How many validation problems one message lists before it says "and N more". */
const MAX_ISSUES = 5;

/** ['params', 1, 'W', 0] → params[1].W[0] */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || 'body';
}

/** A validation entry as fastify-type-provider-zod reports a zod issue. */
export interface Issue {
  keyword?: string;
  instancePath?: string;
  message: string;
  /** the allowed options: `values` of an enum, `options` of a discriminator */
  params?: { keys?: string[]; errors?: ZodIssue[][]; values?: unknown[]; options?: unknown[] };
}

/** A zod issue inside a union's report, its path relative to the union's value. */
interface ZodIssue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
  errors?: ZodIssue[][];
  values?: unknown[];
}

const asIssue = (z: ZodIssue, parent: string): Issue => ({
  keyword: z.code,
  instancePath: [parent, ...z.path.map(String)].join('/'),
  message: z.message,
  params: { keys: z.keys, errors: z.errors, values: z.values },
});

/**
 * A field that takes several forms (rows of numbers, a flat list, a binary tensor) fails as
 * a zod union that lists every form's issues. Report the form the client evidently meant:
 * not those that failed on the value's type at the root; of the others the one that got
 * furthest into the value, then the one with fewer complaints. A value wholly in another
 * form than the field takes (x as one flat row, b as a column) is said so in one message.
 */
function unionBranch(issue: Issue, body: unknown): Issue[] {
  const branches = issue.params?.errors ?? [];
  const wrongType = (b: ZodIssue[]) => b.length === 1 && b[0]!.code === 'invalid_type' && b[0]!.path.length === 0;
  const candidates = branches.filter((b) => !wrongType(b));
  const at = pathOf(issue.instancePath);
  const value = valueAt(body, at);
  const custom = (message: string): Issue[] => [{ ...issue, keyword: 'custom', message }];
  if (candidates.length === 0) {
    if (value === undefined) return [{ ...issue, keyword: 'invalid_type', message: 'expected array, received undefined' }];
    return custom(`is ${kindOf(value)}; ${issue.message.replace(/^Invalid input$/, 'a value of another type')}`);
  }
  // an object that is no try at a binary tensor (x: {"a": 1}): its missing dtype, shape and data would mislead
  const tensorKeys = ['dtype', 'shape', 'data'];
  if (isObject(value) && issue.message.endsWith('binary tensor') && !tensorKeys.some((k) => k in value))
    return custom(`is an object; ${issue.message}, {"dtype": "float32", "shape": [rows, cols], "data": "<base64>"}`);
  const elements: unknown[] = Array.isArray(value) ? value : [];
  const rows = elements.filter(Array.isArray).length;
  const numbers = elements.filter((e) => typeof e === 'number').length;
  // y takes rows or numbers: both a row form and a number form are candidates
  if (candidates.length > 1 && rows > 0 && numbers > 0) return custom('mixes numbers and rows; send all rows or all numbers');
  const only = (expected: string, received: string) =>
    candidates.length === 1 &&
    candidates[0]!.every((i) => i.path.length === 1 && i.message === `Invalid input: expected ${expected}, received ${received}`);
  if (elements.length > 0 && numbers === elements.length && only('array', 'number')) {
    const field = at.at(-1);
    if (field === 'W')
      return custom('is a flat list of numbers; W takes rows, in × out: one row per input (a 1-output W is a column, [[a], [b]])');
    if (field === 'x' && inputsOf(body) === 1)
      return custom(
        'is a flat list of numbers; x takes rows, batch × in, and the network has 1 input: send a column, [[a], [b], …], not [a, b, …]',
      );
    if (field === 'x') return custom('is a flat list of numbers; x takes rows, batch × in: for one example send [[0, 1]], not [0, 1]');
    return custom('is a flat list of numbers; it takes a list of rows');
  }
  if (elements.length > 0 && rows === elements.length && only('number', 'array')) {
    return custom('is a list of rows; it takes a flat list of numbers, e.g. [0, 0.1], not [[0], [0.1]]');
  }
  const depth = (b: ZodIssue[]) => b.reduce((d, i) => Math.max(d, i.path.length), 0);
  // deeper, then fewer complaints, then (a string "0" in a flat y) the form that wanted a number there
  const better = (a: ZodIssue[], b: ZodIssue[]) =>
    depth(b) !== depth(a) ? depth(b) > depth(a) : b.length !== a.length ? b.length < a.length : wantsRows(a) && !wantsRows(b);
  const best = candidates.reduce((a, b) => (better(a, b) ? b : a));
  return best.flatMap((z) => expand(asIssue(z, issue.instancePath ?? ''), body));
}

/** The network's inputs (params[0].W's rows, as rows or a binary tensor), when the body says. */
function inputsOf(body: unknown): number | undefined {
  const params = isObject(body) ? body.params : undefined;
  const first: unknown = Array.isArray(params) ? params[0] : undefined;
  const W = isObject(first) ? first.W : undefined;
  if (Array.isArray(W)) return W.length;
  const shape = isObject(W) ? W.shape : undefined;
  return Array.isArray(shape) && typeof shape[0] === 'number' ? shape[0] : undefined;
}

/** A form that complained of an element not being a row. */
const wantsRows = (branch: ZodIssue[]) => branch.some((i) => i.message.startsWith('Invalid input: expected array'));

function expand(issue: Issue, body: unknown): Issue[] {
  return issue.keyword === 'invalid_union' && issue.params?.errors ? unionBranch(issue, body) : [issue];
}

/** '/params/1/W' → ['params', 1, 'W'] */
function pathOf(instancePath = ''): (string | number)[] {
  return instancePath
    .split('/')
    .filter((s) => s !== '')
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

const quote = (name: string) => JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name);

/** A value the client sent, named in a few words: a string quoted, a list or an object by its kind. */
const valueName = (value: unknown): string =>
  typeof value === 'string' ? quote(value) : value !== null && typeof value === 'object' ? kindOf(value) : String(value);

/** A value's JSON kind, "a string", "a list", "null": for data, whose values are never echoed back (nor logged). */
const kindOf = (value: unknown): string =>
  value === null
    ? 'null'
    : Array.isArray(value)
      ? 'a list'
      : isObject(value)
        ? 'an object'
        : typeof value === 'number'
          ? 'a number'
          : typeof value === 'string'
            ? 'a string'
            : typeof value === 'boolean'
              ? 'a boolean'
              : String(value);

/**
 * What the field at `at` takes, where zod names only its JSON type (`kind`): a row of a
 * matrix, a layer of params, /init's widths.
 */
function expectedAt(at: (string | number)[], kind: string): string {
  const last = at.at(-1);
  const field = typeof last === 'number' ? at.at(-2) : last;
  switch (kind) {
    case 'number':
      return 'a number';
    case 'int':
      return 'a whole number';
    case 'boolean':
      return 'true or false';
    case 'string':
      return 'a string';
    case 'array':
      if (typeof last === 'number' && (field === 'x' || field === 'y' || field === 'W')) return 'a row: a list of numbers';
      if (last === 'params') return 'a list of layers, first to last: [{"W": …, "b": …}, …]';
      if (field === 'layers') return 'a list of widths, inputs to outputs, e.g. [2, 4, 1]';
      if (field === 'shape') return 'a list of sizes, e.g. [4, 2]';
      return 'a list';
    case 'object':
      if (field === 'params' && typeof last === 'number') return 'a layer, {"W": …, "b": …}';
      if (field === 'optimizer') return 'an object, e.g. {"name": "adam", "learningRate": 0.01}';
      return 'an object';
    default:
      return kind;
  }
}

/** The value at `path` in the body the client sent. */
function valueAt(body: unknown, path: (string | number)[]): unknown {
  let value = body;
  for (const part of path) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
  return value;
}

/** The fields each object of a body may hold, by path with `*` for array indices (schemas.ts, FIELDS_AT). */
type FieldsAt = ReadonlyMap<string, ReadonlySet<string>>;

/** The fields the object at `at` may hold. */
const fieldsOf = (fieldsAt: FieldsAt | undefined, at: (string | number)[]): Iterable<string> =>
  fieldsAt?.get(at.map((p) => (typeof p === 'number' ? '*' : p)).join('.')) ?? [];

function describeIssue(issue: Issue, body: unknown, fieldsAt: FieldsAt | undefined): string {
  const at = pathOf(issue.instancePath);
  const path = fieldPath(at);
  const keys = issue.params?.keys;
  if (issue.keyword === 'unrecognized_keys' && keys) {
    const meantOf = (k: string) => meantField(k, fieldsOf(fieldsAt, at));
    // an optimizer's setting at the top of a /train body (lr, learning_rate): it goes inside optimizer
    const optimizerOf = (k: string) => {
      if (at.length !== 0) return undefined;
      const settings = [...fieldsOf(fieldsAt, ['optimizer'])];
      return settings.includes(k) ? k : meantField(k, settings);
    };
    const names = keys.slice(0, MAX_ISSUES).map((k) => {
      const meant = meantOf(k);
      const inOptimizer = meant ? undefined : optimizerOf(k);
      if (inOptimizer) return `${quote(k)} (did you mean "optimizer": {"name": …, "${inOptimizer}": …}?)`;
      return meant ? `${quote(k)} (did you mean "${meant}"?)` : quote(k);
    });
    if (keys.length > MAX_ISSUES) names.push(`and ${keys.length - MAX_ISSUES} more`);
    // optax writes momentum as an option of sgd; here it is an optimizer of its own
    const momentum =
      at.at(-1) === 'optimizer' && keys.includes('momentum')
        ? '; momentum is an optimizer of its own here: {"name": "momentum", "learningRate": …, "momentum": 0.9}'
        : '';
    // (not when W is there too: then weight is a leftover, not W in PyTorch's layout)
    const weight =
      keys.some((k) => isPytorchWeight(k) && meantOf(k) === 'W') && valueAt(body, [...at, 'W']) === undefined ? `; ${PYTORCH_WEIGHT}` : '';
    return `${path} has unknown field${keys.length > 1 ? 's' : ''} ${names.join(', ')}${momentum}${weight}`;
  }
  // an option spelt as another library spells it: say which of ours it means
  const allowed = issue.params?.values ?? issue.params?.options;
  const given = valueAt(body, at);
  const options = allowed?.every((v) => typeof v === 'string') ? (allowed as string[]) : undefined;
  if (options) {
    const list = options.map((v) => `"${v}"`).join(', ');
    const expected = options.length === 1 ? list : `one of ${list}`;
    if (given === undefined) return `${path} is required: ${expected}`;
    if (typeof given !== 'string') return `${path} is ${valueName(given)}; expected ${expected}`;
    const meant = meantOption(given, options);
    // Keras's Dense(classes, activation="softmax"): here the loss applies the softmax
    const softmax =
      at.at(-1) === 'outputActivation' && given.toLowerCase() === 'softmax'
        ? '; for classes, leave outputActivation out and send "loss": "softmax_cross_entropy", which applies the softmax itself ' +
          '(POST /forward takes "outputActivation": "softmax" for the probabilities)'
        : '';
    return `${path} is ${quote(given)}; ${meant ? `did you mean "${meant}"? (one of ${list})` : `expected ${expected}`}${softmax}`;
  }
  // our cross-field checks, and our messages for zod's checks ("is outside float32's range"),
  // are phrased to follow the field's name
  if (issue.keyword === 'custom' || /^(is|has) /.test(issue.message)) return `${path} ${issue.message}`;
  const message = issue.message.replace(/^Invalid input: /, '');
  if (path === 'body' && message === 'expected object, received string')
    return 'body is a JSON string, not an object: was it encoded twice?';
  const notObject = /^expected object, received (array|null|number|boolean)$/.exec(message);
  if (path === 'body' && notObject)
    return `body is ${notObject[1] === 'null' ? '' : 'a '}JSON ${notObject[1]}, not an object; send one object of named fields, as /docs shows`;
  if (path === 'params' && message === 'expected array, received object') return paramsAsObject(given);
  // JSON.stringify writes NaN and ±Infinity as null
  if (message === 'expected number, received null')
    return `${path} is null; expected a number (JavaScript's JSON.stringify writes NaN and Infinity as null; inputs must be finite)`;
  const missing = /^expected (\w+), received undefined$/.exec(message);
  if (missing) return `${path} is required (${missing[1]})`;
  // 1e400 parses as Infinity: the same words as a number that overflows float32
  if (/^expected number, received -?Infinity$/.test(message)) return `${path} ${FLOAT32_RANGE}`;
  if (message === 'expected int, received number' && typeof given === 'number') return `${path} is ${given}; it must be a whole number`;
  const wrongType = /^expected (\w+), received \w+$/.exec(message);
  if (wrongType && given !== undefined) return `${path} is ${kindOf(given)}; expected ${expectedAt(at, wrongType[1]!)}`;
  return `${path}${boundMessage(message, given) ?? `: ${message}`}`;
}

const RELATIONS: Record<string, string> = { '>=': '≥', '>': '>', '<=': '≤', '<': '<' };

/**
 * zod's bounds in the client's terms, after the field's name: "Too small: expected number to
 * be >=1" as " is 0; it must be ≥ 1", "Too big: expected array to have <=2 items" as " has 3
 * items; it takes at most 2". Undefined for any other message.
 */
function boundMessage(message: string, given: unknown): string | undefined {
  const bound = /^Too (?:small|big): expected (\w+) to (?:be|have) ([<>]=?)(\S+)(?: items)?$/.exec(message);
  if (!bound) return undefined;
  const [, kind, relation, limit] = bound as unknown as [string, string, string, string];
  if ((kind === 'number' || kind === 'int') && typeof given === 'number') return ` is ${given}; it must be ${RELATIONS[relation]} ${limit}`;
  if (kind === 'array' && Array.isArray(given)) {
    const count = `${given.length} item${given.length === 1 ? '' : 's'}`;
    const most = relation.startsWith('<');
    const n = Number(limit) + (relation.length === 1 ? (most ? -1 : 1) : 0);
    return ` has ${count}; it takes at ${most ? 'most' : 'least'} ${n}`;
  }
  return undefined;
}

/**
 * Issues that say the same or nothing more: any other issue at a field whose type is wrong (zod
 * v4 also checks a string's length against an array's bound), and the bound of a safe integer
 * beside a tighter one (a seed of 2^53 is over both 2^53 − 1 and 2^32 − 1).
 */
function withoutRedundant(issues: Issue[]): Issue[] {
  const wrongType = new Set(issues.filter((i) => i.keyword === 'invalid_type').map((i) => i.instancePath ?? ''));
  const bounded = new Set(
    issues.filter((i) => /^too_(big|small)$/.test(i.keyword ?? '') && !SAFE_INT_BOUND.test(i.message)).map((i) => i.instancePath ?? ''),
  );
  return issues.filter((i) => {
    const at = i.instancePath ?? '';
    if (wrongType.has(at) && i.keyword !== 'invalid_type') return false;
    return !(SAFE_INT_BOUND.test(i.message) && bounded.has(at));
  });
}
const SAFE_INT_BOUND = /expected int to be [<>]=-?9007199254740991$/;

/** params sent as one object: one layer not in a list, or layers by name as Flax and Haiku keep them. */
function paramsAsObject(params: unknown): string {
  const values = Object.values(params as object);
  const layers = values.length > 0 && values.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v));
  if (layers)
    return (
      'params is an object of named layers (as Flax and Haiku keep them); it takes a list of layers in order, first to last: ' +
      '[{"W": …, "b": …}, …] (Flax\'s kernel is W, in × out)'
    );
  return 'params is one object; it takes a list of layers, first to last, even for one layer: [{"W": …, "b": …}]';
}

/**
 * Of the issues at one object, "W is required" beside an unknown "kernel" that means W says
 * the same twice: keep the unknown field, which names both.
 */
function withoutMissingMeant(issues: Issue[], body: unknown, fieldsAt: FieldsAt | undefined): Issue[] {
  const meant = new Set<string>();
  for (const issue of issues) {
    if (issue.keyword !== 'unrecognized_keys' || !issue.params?.keys) continue;
    const at = pathOf(issue.instancePath);
    // the keys the message shows: a body of a million unknown keys costs no more than five
    for (const key of issue.params.keys.slice(0, MAX_ISSUES)) {
      const field = meantField(key, fieldsOf(fieldsAt, at));
      if (field && valueAt(body, [...at, field]) === undefined) meant.add([...at, field].join('/'));
    }
  }
  // paths compared as pathOf reads them: the body's own fields are at "/" in an unknown-key issue, "/x" in theirs
  return meant.size === 0
    ? issues
    : issues.filter((i) => !(meant.has(pathOf(i.instancePath).join('/')) && /received undefined$/.test(i.message)));
}

/** The 400's message for zod's issues with `body`, the parsed body they are about, sent to `route`. */
export function validationMessage(reported: Issue[], body: unknown, route: string | undefined): string {
  const fieldsAt = isPostRoute(route) ? FIELDS_AT[route] : undefined;
  const issues = withoutRedundant(
    withoutMissingMeant(
      reported.flatMap((issue) => expand(issue, body)),
      body,
      fieldsAt,
    ),
  );
  let hinted = false;
  const shown = issues.slice(0, MAX_ISSUES).map((issue) => {
    const text = describeIssue(issue, body, fieldsAt);
    // a number sent in quotes ("0.5"), or an answer's "NaN" sent back: said once, on the first
    const given = valueAt(body, pathOf(issue.instancePath));
    if (hinted || !/expected number, received string$/.test(issue.message) || typeof given !== 'string') return text;
    const hint = NON_FINITE_STRINGS.includes(given)
      ? ' (inputs must be finite: "NaN" and "Infinity" appear only in answers)'
      : given.trim() !== '' && Number.isFinite(Number(given))
        ? ' (numbers are not quoted in JSON)'
        : '';
    hinted ||= hint !== '';
    return text + hint;
  });
  const more = issues.length - shown.length;
  return shown.join('; ') + (more > 0 ? `; and ${more} more` : '');
}
