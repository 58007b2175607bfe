// @octet/native-common — what Octet's native CPU addons (@octet/numerics, @octet/router) share.
//
// C++: include/octet/native/pool.h (thread pool, FTZ/DAZ guard) and include/octet/native/napi.h (Node-API
// argument readers, error guard, info()), header-only; a binding.gyp adds the directory with
//   "include_dirs": ["<!(node -p \"require('@octet/native-common/include-dir')\")"]
// TypeScript: the addon loader below.

export { type NativeAddonSpec, type NativeAddonLoad, loadNativeAddon, nativeAddonPath } from "./addon.js";
