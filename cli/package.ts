// What `import … from 'wiz'` gives in Node: the library, and as the default export the absolute path of the
// `wizer` executable, as the @bytecodealliance/wizer package exports its binary, so that an npm alias or override
// of that package to wiz is the whole change for a build that spawns it.
import { fileURLToPath } from 'node:url';

export * from '../src/index.ts';

/** This file runs from `cli/` (sources) or `dist/cli/` (the build). */
const bin = import.meta.url.endsWith('.ts') ? '../bin/' : '../../bin/';

/** The `wizer` executable (a script Windows runs through a .cmd file); spawn it with the reference's arguments. */
const wizer: string = fileURLToPath(new URL(`${bin}${process.platform === 'win32' ? 'wizer.cmd' : 'wizer.js'}`, import.meta.url));

export default wizer;
