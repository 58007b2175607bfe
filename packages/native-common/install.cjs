// The install script of Octet's native packages (@octet/numerics, @octet/router), run in the package's
// directory as "install": "node -e \"require('@octet/native-common/install')\"" (as binding.gyp finds the
// include directory: no bin to link). It runs node-gyp-build, the usual install step of native npm
// packages: nothing to do when the package's prebuilt binary loads on this machine, else compile the
// package's native/ sources with node-gyp (a C++ compiler, make and python3 needed). Two differences:
//   - in the Octet repository (a workspace package, not installed under node_modules) it does nothing: the
//     package's build script compiles the kernels, and `npm ci` would otherwise compile them a second time;
//   - a failed compile does not fail the install: the package runs its TypeScript path and says why
//     (numericsBackend() / routerBackend(), and a warning on first use).
// CommonJS on purpose: it runs before anything is built.
"use strict";
const { spawnSync } = require("node:child_process");
const { sep } = require("node:path");

const packageDir = process.cwd();
const name = process.env.npm_package_name || packageDir;

if (!packageDir.split(sep).includes("node_modules")) {
  console.log(`${name}: a repository checkout, not an installed package: the build script compiles the native kernels`);
  process.exit(0);
}

const result = spawnSync(process.execPath, [require.resolve("node-gyp-build/bin.js")], { stdio: "inherit", cwd: packageDir });
if (result.status !== 0) {
  console.warn(`${name}: no prebuilt native kernel for ${process.platform}-${process.arch} and compiling one failed; the TypeScript path runs`);
}
process.exit(0);
