/**
 * zod for the API's schemas, compiled ahead of time: importing 'zod/compile' first makes every
 * schema built afterwards compile into a flat validator on its first parse (zod 4.6; the same
 * results and error messages). Validating an M body took 4.6 ms with zod's run-time walk and
 * 1.1 ms compiled (bench/RESULTS.md). Modules that build API schemas import z from here.
 */
import 'zod/compile';

export { z } from 'zod';
