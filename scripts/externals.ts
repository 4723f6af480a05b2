/**
 * The packages `npm run build` leaves out of the bundle, loaded from node_modules at run time:
 * gpu.js is required lazily (engine/backend.ts) and patched in place (patches/); webgpu and gl
 * are native addons; the swagger plugins read their UI's static files relative to their own
 * folders. The image keeps only these and what they depend on (scripts/prune-runtime.ts).
 */
export const EXTERNALS = ['gpu.js', 'webgpu', 'gl', '@fastify/swagger', '@fastify/swagger-ui'];
