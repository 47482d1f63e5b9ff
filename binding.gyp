{
  "targets": [
    {
      "target_name": "peercache",
      "sources": [
        "native/addon.cc",
        "native/context.cc",
        "native/region.cc",
        "native/worker.cc",
        "native/endpoint.cc",
        "native/batch.cc",
        "native/wait_loop.cc",
        "native/ucx_api.cc",
        "native/compat.cc",
        "native/shared_mapping.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["-ldl"],
      "conditions": [
        ["OS=='linux'", {
          "include_dirs": ["/usr/include"]
        }]
      ]
    }
  ]
}
