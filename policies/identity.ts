import { identityPath } from './default.ts';
import { definePolicy, POLICY_API_VERSION } from './types.ts';

/** Built-in: the default package with flat `scope/name` paths (Rucio's `identity` lfn2pfn). */
export default definePolicy({
  apiVersion: POLICY_API_VERSION,
  name: 'identity',
  description: "paths are scope/name; everything else as the default package",
  lfn2pfn: (did) => identityPath(did),
});
