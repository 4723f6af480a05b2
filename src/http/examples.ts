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
