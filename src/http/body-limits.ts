import { type Limits, layersOverLimit } from '../runtime/limits.js';
import { isObject } from './validation-view.js';

/**
 * Checks of a request body's size in lists, brackets and fields, made before zod looks at any
 * element (json-body.ts's parseWithinLimits, on the event loop or in a JSON thread): a list or a body over
 * them is refused with the limit's 413, at the cost of counting.
 */

/** The limits a body's lists are held to before its schema checks their elements. */
export type ListLimits = Pick<Limits, 'layers' | 'batch' | 'width'>;

/**
 * A body's lists longer than any field may hold, counted before its schema checks each
 * element: zod checks every one (in a union once per branch, with an issue for each that
 * fails), so a few KB of gzip holding millions of rows took gigabytes of memory and a minute
 * to refuse, and could take a JSON thread (or, without them, the process) down. The same 413
 * for 33 layers or a million (the schemas' own bound, LAYERS_CEILING, would answer a 400).
 * A list over its own limit but within the longest is left to the checks after validation,
 * whose messages know the network. Only JSON lists: a binary tensor's data is decoded only
 * when its shape fits it.
 */
export function bodyOverListLimits(url: string, body: unknown, limits: ListLimits): string | undefined {
  if (!isObject(body)) return undefined;
  if (url === '/init') return Array.isArray(body.layers) ? layersOverLimit('layers', body.layers.length - 1, limits.layers) : undefined;
  const longest = Math.max(limits.batch, limits.width);
  const batch = { longest, limit: limits.batch, setting: 'batch' } as const;
  const width = { longest, limit: limits.width, setting: 'width' } as const;
  const { params } = body;
  if (Array.isArray(params)) {
    const over = layersOverLimit('params', params.length, limits.layers);
    if (over !== undefined) return over;
    for (let l = 0; l < params.length; l++) {
      const layer: unknown = params[l];
      if (!isObject(layer)) continue;
      const overW = listOverLimit(`params[${l}].W`, layer.W, width, limits);
      if (overW !== undefined) return overW;
      const overB = listOverLimit(`params[${l}].b`, layer.b, width);
      if (overB !== undefined) return overB;
    }
  }
  return listOverLimit('x', body.x, batch, limits) ?? listOverLimit('y', body.y, batch, limits);
}

const SETTINGS = { batch: 'GRADSERVE_MAX_BATCH', width: 'GRADSERVE_MAX_WIDTH' } as const;

interface ListBound {
  /** the longest list checked element by element */
  longest: number;
  /** and the limit a longer one is told of */
  limit: number;
  setting: keyof typeof SETTINGS;
}

/**
 * A JSON list longer than `bound.longest`, or, for a field that takes rows, a row that is:
 * named with the limit it is over (a row's is the width limit, `rows.width`).
 */
function listOverLimit(field: string, list: unknown, bound: ListBound, rows?: { width: number }): string | undefined {
  if (!Array.isArray(list)) return undefined;
  const unit = rows && Array.isArray(list[0]) ? 'rows' : 'entries';
  if (list.length > bound.longest)
    return `${field} has ${list.length} ${unit}; the ${bound.setting} limit is ${bound.limit} (${SETTINGS[bound.setting]})`;
  if (!rows) return undefined;
  for (let r = 0; r < list.length; r++) {
    const row: unknown = list[r];
    if (Array.isArray(row) && row.length > bound.longest) {
      return `${field}[${r}] has ${row.length} entries; the width limit is ${rows.width} (${SETTINGS.width})`;
    }
  }
  return undefined;
}

/**
 * More lists, objects or fields than any body within the limits holds, counted in its bytes
 * before it is parsed: JSON.parse makes something of each `[`, `{` and key, so 64 MiB of `[],`
 * (64 KB of gzip) took a JSON thread seconds and a gigabyte to parse into 22 million empty
 * lists, and 5 million keys (12 MB of gzip) nearly two minutes. A body within the limits holds
 * at most x's and y's rows and every W's rows, and a few objects; a few fields per layer (a
 * binary tensor's three), a dozen at the top and the optimizer's. Brackets and colons in
 * strings count too: no valid body has any. A few thousand memchr calls for an M-sized body.
 */
export function bodyOverStructure(bytes: Uint8Array, limits: ListLimits): string | undefined {
  // (objects are far fewer than lists, but held to the same bound: the layer limit's 413 names a params of 100000 {})
  const lists = 2 * limits.batch + limits.layers * (limits.width + 4) + 16;
  const fields = 8 * limits.layers + 64;
  for (const [mark, most, what] of [
    [0x5b, lists, 'lists ("[")'],
    [0x7b, lists, 'objects ("{")'],
    [0x3a, fields, 'fields (":")'],
  ] as const) {
    let count = 0;
    for (let i = bytes.indexOf(mark); i !== -1; i = bytes.indexOf(mark, i + 1)) {
      if (++count > most) {
        return `the body holds more than ${most} ${what}, more than any body within the limits (GRADSERVE_MAX_BATCH, GRADSERVE_MAX_WIDTH, GRADSERVE_MAX_LAYERS)`;
      }
    }
  }
  return undefined;
}
