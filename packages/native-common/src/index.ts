// @octet/native-common — what Octet's native CPU addons (@octet/numerics, @octet/router) share.
//
// C++: include/octet/native/pool.h (thread pool, FTZ/DAZ guard), include/octet/native/napi.h (Node-API
// argument readers, error guard, info()) and include/octet/native/isa.h (kernels compiled per instruction set,
// one picked at load), header-only; a binding.gyp adds the directory with
//   "include_dirs": ["<!(node -p \"require('@octet/native-common/include-dir')\")"]
// TypeScript: the addon loader below (node-gyp-build: a local build, else the package's prebuilt binary).

export { type NativeAddonSpec, type NativeAddonLoad, type NativeBuildInfo, type NativeIsa, loadNativeAddon, nativeAddonPath } from "./addon.js";
