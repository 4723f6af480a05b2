/** The XOR lesson's network: the example every endpoint's documentation starts from. */
export const xorRequest = {
  params: [
    {
      W: [
        [0.5, -0.3, 0.8, 0.1],
        [-0.6, 0.9, 0.2, -0.4],
      ],
      b: [0, 0.1, -0.1, 0],
    },
    { W: [[0.7], [-0.5], [0.3], [0.9]], b: [0.05] },
  ],
  x: [
    [0, 0],
    [0, 1],
    [1, 0],
    [1, 1],
  ],
  y: [[0], [1], [1], [0]],
  activation: 'tanh',
  outputActivation: 'sigmoid',
  loss: 'bce',
  reduction: 'mean',
} as const;

/** The lesson's forward pass: the same network and inputs, no targets. */
export const xorForwardRequest = {
  params: xorRequest.params,
  x: xorRequest.x,
  activation: xorRequest.activation,
  outputActivation: xorRequest.outputActivation,
} as const;

/** The lesson's network shape, initialised as the lesson would. */
export const xorInitRequest = { layers: [2, 4, 1], seed: 0, scheme: 'glorot_normal' } as const;

/** The XOR network trained to a loss below 0.05 (0.0012 after these 500 steps, on both backends; README, "Training"). */
export const xorTrainRequest = {
  ...xorRequest,
  optimizer: { name: 'adam', learningRate: 0.05 },
  steps: 500,
} as const;
