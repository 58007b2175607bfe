// The C++ include directory of @octet/native-common, for binding.gyp:
//   "include_dirs": ["<!(node -p \"require('@octet/native-common/include-dir')\")"]
// CommonJS on purpose: `node -p` evaluates a script, and require() of this file needs no ES-module support.
"use strict";
module.exports = require("node:path").join(__dirname, "include");
