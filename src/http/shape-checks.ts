import type { InitScheme } from '../engine/init.js';
import { lossOps } from '../engine/ops/head.js';
import type { Activation, Loss } from '../engine/types.js';
import { plural, type Tensor } from './tensors.js';

/**
 * The checks a JSON schema cannot express: layers that chain, x and y that fit the
 * network, options that go together. Each issue names its field and says what was
 * expected, without echoing the data.
 */
export interface ShapeIssue {
  path: (string | number)[];
  message: string;
}

interface Body {
  params: { W: Tensor; b: Tensor }[];
  x: Tensor;
  y?: Tensor;
  loss?: Loss | undefined;
}

/** Class indices where softmax cross-entropy takes a distribution per row: the usual slip, named. */
const oneHotHint = (body: Body) =>
  body.loss === 'softmax_cross_entropy'
    ? '; softmax_cross_entropy takes one-hot rows (a 1 in the column of the class); for class indices send "loss": "softmax_cross_entropy_with_integer_labels"'
    : '';

/** Class labels, one per row (a flat list, or one column): each an integer from 0 to out − 1. */
function labelIssues(y: Tensor, batch: number, outDim: number): ShapeIssue[] {
  const [yRows, yCols] = y.shape;
  if (yRows !== batch || (yCols !== undefined && yCols !== 1)) {
    return [
      {
        path: ['y'],
        message: `has shape [${y.shape.join(', ')}]; softmax_cross_entropy_with_integer_labels takes one class index per row: a flat list of ${batch} (the batch)`,
      },
    ];
  }
  const i = y.data.findIndex((k) => !(Number.isInteger(k) && k >= 0 && k < outDim));
  if (i < 0) return [];
  return [
    {
      path: yCols === undefined ? ['y', i] : ['y', i, 0],
      message: `is ${y.data[i]}; a class index is an integer from 0 to ${outDim - 1} (the last layer has ${plural(outDim, 'output')})`,
    },
  ];
}

/**
 * How each layer's W reads against what flows into it: as sent (in × out), only transposed
 * (out × in, PyTorch's nn.Linear.weight layout), or either way (square, its b fitting). None
 * when some layer fits neither way, or none needs transposing.
 */
function layouts(params: Body['params'], x: Tensor): ('sent' | 'transposed' | 'either')[] | undefined {
  const found: ('sent' | 'transposed' | 'either')[] = [];
  let width = x.shape[1] ?? 1;
  for (const { W, b } of params) {
    const [rows, cols] = W.shape as [number, number];
    const asSent = rows === width && b.shape[0] === cols;
    const flipped = cols === width && b.shape[0] === rows;
    if (!asSent && !flipped) return undefined;
    found.push(asSent && flipped ? 'either' : asSent ? 'sent' : 'transposed');
    width = asSent ? cols : rows;
  }
  return found.includes('transposed') ? found : undefined;
}

/**
 * Every tensor already has its shape (see tensors.ts: rectangular, finite, in float32's
 * range); what is left is whether the shapes fit together.
 */
export function shapeIssues(body: Body): ShapeIssue[] {
  const issues: ShapeIssue[] = [];
  const { params, x, y } = body;
  if (params.length === 0) {
    issues.push({ path: ['params'], message: 'is empty; it needs at least one layer' });
    return issues;
  }
  // the commonest mistake, said as such rather than as the mismatches it makes
  const layout = layouts(params, x);
  if (layout && !layout.includes('sent')) {
    // square Ws fit either way: weights exported from PyTorch need them transposed too
    const square = layout.includes('either') ? ', the square ones too' : '';
    issues.push({
      path: ['params'],
      message: `has every W as out × in (PyTorch's nn.Linear.weight layout); W is in × out here, as in JAX (x @ W + b): send each W transposed${square}`,
    });
    return issues;
  }
  if (layout) {
    for (const [l, how] of layout.entries()) {
      if (how !== 'transposed') continue;
      const [rows, cols] = params[l]!.W.shape as [number, number];
      issues.push({
        path: ['params', l, 'W'],
        message: `is ${rows}×${cols} but must be in × out = ${cols}×${rows}: it looks transposed (PyTorch's out × in layout); send its transpose`,
      });
    }
    return issues;
  }
  let prevOut: number | undefined;
  params.forEach((layer, l) => {
    const [inDim, outDim] = layer.W.shape as [number, number];
    const bLength = layer.b.shape[0]!;
    if (bLength !== outDim) {
      issues.push({
        path: ['params', l, 'b'],
        message: `has ${plural(bLength, 'entry', 'entries')}; params[${l}].W has ${plural(outDim, 'column')}`,
      });
    }
    if (prevOut !== undefined && inDim !== prevOut) {
      issues.push({ path: ['params', l, 'W'], message: `has ${plural(inDim, 'row')}; layer ${l - 1} outputs ${plural(prevOut, 'value')}` });
    }
    prevOut = outDim;
  });

  const inDim = params[0]!.W.shape[0]!;
  const [batch, xCols] = x.shape as [number, number];
  // in × batch (a batch of column vectors): y, if any, then has x's columns as its rows
  const xTransposed = xCols !== inDim && batch === inDim && (y === undefined || y.shape[0] === xCols);
  if (xCols !== inDim) {
    const hint = xTransposed ? `; x looks transposed: send ${plural(xCols, 'row')} of ${inDim} (shape [${xCols}, ${inDim}])` : '';
    issues.push({ path: ['x'], message: `has ${plural(xCols, 'column')}; params[0].W has ${plural(inDim, 'row')} (inputs)${hint}` });
  }
  if (y === undefined || xTransposed) return issues;
  const outDim = prevOut!;
  if (body.loss === 'softmax_cross_entropy_with_integer_labels') return [...issues, ...labelIssues(y, batch, outDim)];
  const [yRows, yCols] = y.shape;
  if (yRows !== batch && yCols === undefined && yRows === batch * outDim) {
    issues.push({
      path: ['y'],
      message: `holds ${yRows} numbers in one dimension; the last layer has ${outDim} outputs: send y as ${plural(batch, 'row')} of ${outDim} (shape [${batch}, ${outDim}])`,
    });
  } else if (yRows !== batch) {
    // [[1, 0, 1]] for three rows of one target: y written as a row, not a column
    const transposed =
      yRows === outDim && yCols === batch
        ? `; y looks transposed: send ${plural(batch, 'row')} of ${outDim} (shape [${batch}, ${outDim}])`
        : '';
    issues.push({ path: ['y'], message: `has ${plural(yRows!, 'row')}; x has ${batch} (the batch)${transposed}` });
  } else if (yCols === undefined && outDim !== 1) {
    issues.push({
      path: ['y'],
      message: `is a flat list; that form needs 1 output, the last layer has ${outDim} (send batch × ${outDim} rows)${oneHotHint(body)}`,
    });
  } else if (yCols !== undefined && yCols !== outDim) {
    issues.push({
      path: ['y'],
      message: `has ${plural(yCols, 'column')}; the last layer outputs ${outDim}${yCols === 1 ? oneHotHint(body) : ''}`,
    });
  }
  return issues;
}

/**
 * A loss that applies its own squashing (bce_logits, softmax_cross_entropy) takes no other
 * output activation; a softmax over one output is always 1, its cross-entropy always 0.
 */
export function optionIssues(body: { loss: Loss; outputActivation?: Activation | undefined; params: Body['params'] }): ShapeIssue[] {
  const op = lossOps[body.loss];
  const issues: ShapeIssue[] = [];
  const required = op.requiredOutputActivation;
  if (required !== undefined && body.outputActivation !== undefined && body.outputActivation !== required) {
    issues.push({
      path: ['outputActivation'],
      message: `is "${body.outputActivation}"; loss "${body.loss}" applies the ${op.squashing} itself and needs "${required}" (or leave outputActivation out)`,
    });
  }
  return [...issues, ...softmaxOfOne(body)];
}

/** A softmax loss on a network of one output: its softmax is always 1, its loss always 0. */
function softmaxOfOne(body: { loss?: Loss | undefined; params: Body['params'] }): ShapeIssue[] {
  if (body.loss === undefined || lossOps[body.loss].squashing !== 'softmax' || body.params.at(-1)?.W.shape[1] !== 1) return [];
  return [
    {
      path: ['loss'],
      message: `is "${body.loss}", but the last layer has 1 output: a softmax over one value is always 1, its loss always 0. Give it one output per class, or use "bce_logits" for two classes`,
    },
  ];
}

/** /forward: a softmax over one output is always 1, as the other routes refuse it. */
export function forwardIssues(body: {
  outputActivation?: string | undefined;
  loss?: Loss | undefined;
  params: Body['params'];
}): ShapeIssue[] {
  const issues = softmaxOfOne(body);
  if (body.outputActivation === 'softmax' && body.params.at(-1)?.W.shape[1] === 1) {
    issues.push({
      path: ['outputActivation'],
      message: 'is "softmax", but the last layer has 1 output: a softmax over one value is always 1. Use "sigmoid" for one output',
    });
  }
  return issues;
}

export function trainIssues(body: { x: Tensor; batchSize?: number | undefined }): ShapeIssue[] {
  const rows = body.x.shape[0]!;
  if (body.batchSize === undefined || body.batchSize <= rows) return [];
  return [{ path: ['batchSize'], message: `is ${body.batchSize}; x has ${plural(rows, 'row')} (leave batchSize out to use them all)` }];
}

export function initIssues(body: { layers: number[]; scheme: InitScheme; biasScheme: string; scale?: number | undefined }): ShapeIssue[] {
  const issues: ShapeIssue[] = [];
  if (body.scale !== undefined && body.scheme !== 'normal' && body.biasScheme !== 'normal') {
    issues.push({
      path: ['scale'],
      message: `applies to scheme "normal" and biasScheme "normal" only; scheme "${body.scheme}" sets its own scale`,
    });
  }
  return issues;
}
