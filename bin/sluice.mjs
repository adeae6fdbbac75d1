#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so a checkout works without a build step.
import { register } from 'tsx/esm/api';

// The AWS SDK announces its future Node requirement on every start; Sluice supports the Node it
// runs on, and the notice would bury the demo's output. Every other warning is still printed.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name !== 'NodeVersionSupportWarning') process.stderr.write(`${w.name}: ${w.message}\n`);
});

register();
await import('./sluice.ts');
