{
  "variables": {
    "octet_arch%": "<!(node -p \"process.env.OCTET_NATIVE_ARCH || 'native'\")"
  },
  "targets": [
    {
      "target_name": "octet_router",
      "sources": ["native/addon.cc", "native/route.cc"],
      "include_dirs": ["<!(node -p \"require('@octet/native-common/include-dir')\")"],
      "cflags!": ["-fno-exceptions", "-O2", "-O0"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17", "-O2", "-O0"],
      "cflags": ["-O3", "-march=<(octet_arch)", "-fno-fast-math", "-ffp-contract=off", "-pthread", "-Wno-maybe-uninitialized", "-Wno-uninitialized"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-march=<(octet_arch)", "-fno-fast-math", "-ffp-contract=off", "-pthread", "-Wno-maybe-uninitialized", "-Wno-uninitialized"],
      "ldflags": ["-pthread"],
      "defines": ["OCTET_BUILD_FLAGS=\"-O3 -march=<(octet_arch) -ffp-contract=off (no -ffast-math)\""],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CFLAGS": ["-O3", "-march=<(octet_arch)", "-ffp-contract=off"]
      }
    }
  ]
}
