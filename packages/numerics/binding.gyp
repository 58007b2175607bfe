{
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('@octet/native-common/include-dir')\")"],
    "cflags!": ["-fno-exceptions", "-O2", "-O0"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17", "-O2", "-O0"],
    "cflags": ["-O3", "-fno-fast-math", "-ffp-contract=off", "-fvisibility=hidden", "-pthread", "-Wno-maybe-uninitialized"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-fno-fast-math", "-ffp-contract=off", "-fvisibility=hidden", "-pthread", "-Wno-maybe-uninitialized"],
    "ldflags": ["-pthread"],
    "defines": ["OCTET_BUILD_FLAGS=\"-O3 -ffp-contract=off (no -ffast-math); baseline target, kernels compiled per ISA and picked at load\""],
    "conditions": [
      ["OS=='linux' and target_arch=='x64'", { "defines": ["OCTET_HAVE_AVX2", "OCTET_HAVE_AVX512"] }]
    ],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "OTHER_CFLAGS": ["-O3", "-ffp-contract=off"]
    }
  },
  "targets": [
    {
      "target_name": "octet_numerics",
      "sources": ["native/addon.cc"],
      "dependencies": ["octet_numerics_scalar"],
      "conditions": [
        ["OS=='linux' and target_arch=='x64'", { "dependencies": ["octet_numerics_avx2", "octet_numerics_avx512"] }]
      ]
    },
    {
      "target_name": "octet_numerics_scalar",
      "type": "static_library",
      "sources": ["native/quantize.cc", "native/gemm.cc", "native/kernels.cc"],
      "defines": ["OCTET_ISA=scalar", "OCTET_ISA_LEVEL=0"]
    }
  ],
  "conditions": [
    ["OS=='linux' and target_arch=='x64'", {
      "targets": [
        {
          "target_name": "octet_numerics_avx2",
          "type": "static_library",
          "sources": ["native/quantize.cc", "native/gemm.cc", "native/kernels.cc"],
          "defines": ["OCTET_ISA=avx2", "OCTET_ISA_LEVEL=1"]
        },
        {
          "target_name": "octet_numerics_avx512",
          "type": "static_library",
          "sources": ["native/quantize.cc", "native/gemm.cc", "native/kernels.cc"],
          "defines": ["OCTET_ISA=avx512", "OCTET_ISA_LEVEL=2"]
        }
      ]
    }]
  ]
}
