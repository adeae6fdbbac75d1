// Entry of a policy worker thread. A worker starts as plain Node: register tsx first so that a
// package (and the contract it imports) may be TypeScript, then hand over to the typed code.
import { register } from 'tsx/esm/api';

register();
await import('./worker-main.ts');
