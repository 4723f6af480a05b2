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
}

/**
 * The layers sent out × in (PyTorch's nn.Linear.weight layout), if reading just those
 * transposed makes every layer chain from x's columns with its b; else none.
 */
function transposedLayers(params: Body['params'], x: Tensor): number[] | undefined {
  const transposed: number[] = [];
  let width = x.shape[1] ?? 1;
  for (const [l, { W, b }] of params.entries()) {
    const [rows, cols] = W.shape as [number, number];
    if (rows === width && b.shape[0] === cols) width = cols;
    else if (cols === width && b.shape[0] === rows) {
      transposed.push(l);
      width = rows;
    } else return undefined;
  }
  return transposed.length > 0 ? transposed : undefined;
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
  const transposed = transposedLayers(params, x);
  if (transposed?.length === params.length) {
    issues.push({
      path: ['params'],
      message:
        "has every W as out × in (PyTorch's nn.Linear.weight layout); W is in × out here, as in JAX (x @ W + b): send each W transposed",
    });
    return issues;
  }
  for (const l of transposed ?? []) {
    const [rows, cols] = params[l]!.W.shape as [number, number];
    issues.push({
      path: ['params', l, 'W'],
      message: `is ${rows}×${cols} but must be in × out = ${cols}×${rows}: it looks transposed (PyTorch's out × in layout); send its transpose`,
    });
  }
  if (transposed) return issues;
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
  if (xCols !== inDim) {
    issues.push({ path: ['x'], message: `has ${plural(xCols, 'column')}; params[0].W has ${plural(inDim, 'row')} (inputs)` });
  }
  if (y === undefined) return issues;
  const outDim = prevOut!;
  const [yRows, yCols] = y.shape;
  if (yRows !== batch && yCols === undefined && yRows === batch * outDim) {
    issues.push({
      path: ['y'],
      message: `is a flat list of ${yRows} numbers; the last layer has ${outDim} outputs: send y as ${batch} rows of ${outDim}`,
    });
  } else if (yRows !== batch) {
    issues.push({ path: ['y'], message: `has ${plural(yRows!, 'row')}; x has ${batch} (the batch)` });
  } else if (yCols === undefined && outDim !== 1) {
    issues.push({
      path: ['y'],
      message: `is a flat list; that form needs 1 output, the last layer has ${outDim} (send batch × ${outDim} rows)`,
    });
  } else if (yCols !== undefined && yCols !== outDim) {
    issues.push({ path: ['y'], message: `has ${plural(yCols, 'column')}; the last layer outputs ${outDim}` });
  }
  return issues;
}

/** A loss that applies its own squashing (bce_logits) takes no other output activation. */
export function optionIssues(body: { loss: Loss; outputActivation?: Activation | undefined }): ShapeIssue[] {
  const required = lossOps[body.loss].requiredOutputActivation;
  if (required === undefined || body.outputActivation === undefined || body.outputActivation === required) return [];
  return [
    {
      path: ['outputActivation'],
      message: `is "${body.outputActivation}"; loss "${body.loss}" applies the sigmoid itself and needs "${required}" (or leave outputActivation out)`,
    },
  ];
}

export function trainIssues(body: { x: Tensor; batchSize?: number | undefined }): ShapeIssue[] {
  const rows = body.x.shape[0]!;
  if (body.batchSize === undefined || body.batchSize <= rows) return [];
  return [{ path: ['batchSize'], message: `is ${body.batchSize}; x has ${plural(rows, 'row')} (leave batchSize out to use them all)` }];
}

export function initIssues(body: { layers: number[]; scheme: InitScheme; biasScheme: string; scale?: number | undefined }): ShapeIssue[] {
  const issues: ShapeIssue[] = [];
  if (body.layers.length < 2)
    issues.push({ path: ['layers'], message: `has ${body.layers.length} widths; it needs at least 2 (inputs and outputs)` });
  if (body.scale !== undefined && body.scheme !== 'normal' && body.biasScheme !== 'normal') {
    issues.push({
      path: ['scale'],
      message: `applies to scheme "normal" and biasScheme "normal" only; scheme "${body.scheme}" sets its own scale`,
    });
  }
  return issues;
}
