import { FLOAT32_MAX } from '../engine/float32.js';
import type { InitScheme } from '../engine/init.js';
import { lossOps } from '../engine/ops/head.js';
import type { Activation, Loss } from '../engine/types.js';

/**
 * The checks a JSON schema cannot express: rectangular matrices, layers that chain, x and
 * y that fit the network, numbers float32 can hold. Each issue names its field and says
 * what was expected, without echoing the data.
 */
export interface ShapeIssue {
  path: (string | number)[];
  message: string;
}

interface Body {
  params: { W: number[][]; b: number[] }[];
  x: number[][];
  y?: number[][] | number[];
}

function rectangular(m: number[][], path: (string | number)[], issues: ShapeIssue[]): number | undefined {
  if (m.length === 0) {
    issues.push({ path, message: 'is empty; it needs at least one row' });
    return undefined;
  }
  const cols = m[0]!.length;
  if (cols === 0) {
    issues.push({ path: [...path, 0], message: 'is empty; rows need at least one entry' });
    return undefined;
  }
  for (let r = 1; r < m.length; r++) {
    if (m[r]!.length !== cols) {
      issues.push({ path: [...path, r], message: `has ${m[r]!.length} entries; row 0 has ${cols}` });
      return undefined;
    }
  }
  return cols;
}

function float32Range(values: number[], path: (string | number)[], issues: ShapeIssue[]): void {
  for (let i = 0; i < values.length; i++) {
    if (Math.abs(values[i]!) > FLOAT32_MAX) {
      issues.push({ path: [...path, i], message: "is outside float32's range (±3.4028235e38)" });
      return;
    }
  }
}

export function shapeIssues(body: Body): ShapeIssue[] {
  const issues: ShapeIssue[] = [];
  const { params, x, y } = body;
  if (params.length === 0) {
    issues.push({ path: ['params'], message: 'is empty; it needs at least one layer' });
    return issues;
  }
  let prevOut: number | undefined;
  params.forEach((layer, l) => {
    const inDim = layer.W.length;
    const outDim = rectangular(layer.W, ['params', l, 'W'], issues);
    if (outDim !== undefined && layer.b.length !== outDim) {
      issues.push({ path: ['params', l, 'b'], message: `has ${layer.b.length} entries; params[${l}].W has ${outDim} columns` });
    }
    if (l > 0 && prevOut !== undefined && inDim !== prevOut) {
      issues.push({ path: ['params', l, 'W'], message: `has ${inDim} rows; layer ${l - 1} outputs ${prevOut} values` });
    }
    prevOut = outDim;
    layer.W.forEach((row, r) => {
      float32Range(row, ['params', l, 'W', r], issues);
    });
    float32Range(layer.b, ['params', l, 'b'], issues);
  });

  const inDim = params[0]!.W.length;
  const xCols = rectangular(x, ['x'], issues);
  if (xCols !== undefined && inDim > 0 && xCols !== inDim) {
    issues.push({ path: ['x'], message: `has ${xCols} columns; params[0].W has ${inDim} rows (inputs)` });
  }
  x.forEach((row, r) => {
    float32Range(row, ['x', r], issues);
  });

  const outDim = prevOut;
  if (y === undefined) return issues;
  if (y.length !== x.length) {
    issues.push({ path: ['y'], message: `has ${y.length} rows; x has ${x.length} (the batch)` });
  } else if (y.length > 0 && typeof y[0] === 'number') {
    if (outDim !== undefined && outDim !== 1) {
      issues.push({
        path: ['y'],
        message: `is a flat list; that form needs 1 output, the last layer has ${outDim} (send batch × ${outDim} rows)`,
      });
    }
    float32Range(y as number[], ['y'], issues);
  } else if (y.length > 0) {
    const rows = y as number[][];
    if (rows.some((row) => !Array.isArray(row))) {
      issues.push({ path: ['y'], message: 'mixes numbers and rows; send all rows or all numbers' });
    } else {
      const badRow = outDim === undefined ? -1 : rows.findIndex((row) => row.length !== outDim);
      if (badRow >= 0)
        issues.push({ path: ['y', badRow], message: `has ${rows[badRow]!.length} entries; the last layer outputs ${outDim}` });
      rows.forEach((row, r) => {
        float32Range(row, ['y', r], issues);
      });
    }
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

export function trainIssues(body: { x: number[][]; batchSize?: number | undefined }): ShapeIssue[] {
  if (body.batchSize === undefined || body.x.length === 0 || body.batchSize <= body.x.length) return [];
  return [{ path: ['batchSize'], message: `is ${body.batchSize}; x has ${body.x.length} rows (leave batchSize out to use them all)` }];
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
