import { setFlagsFromString } from 'node:v8';

/**
 * Threads started after this call have `gc` in their global scope (V8's flags are the
 * process's). The webasm and JSON worker threads collect with it after large jobs. They used
 * to expose it themselves, by setting the flag and making a context for it
 * (vm.runInNewContext('gc')) at their first collection: a thread terminated at shutdown while
 * it bootstrapped that context made V8 print its bootstrap error into stdout, among the access
 * log's lines (1 in 25 runs on Node 22). Call it before starting threads.
 */
export function exposeGcToNewThreads(): void {
  setFlagsFromString('--expose-gc');
}
