// Entry of a policy worker thread. A worker starts as plain Node: register tsx first so that a
// package (and the contract it imports) may be TypeScript, then hand over to the typed code.
// Both hooks: a .ts file outside a "type": "module" package (/etc/sluice/policy.ts) is CommonJS
// to Node, and only tsx's CommonJS hook compiles it.
import { register } from 'tsx/esm/api';
import { register as registerCjs } from 'tsx/cjs/api';

register();
registerCjs();
await import('./worker-main.ts');
