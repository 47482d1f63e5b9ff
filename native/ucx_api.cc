#include "ucx_api.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>

#include "glibc_compat.h"

namespace peercache {
namespace {

UcxApi* g_api = nullptr;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

// UCX logs its own errors (e.g. "no usable transports" while we probe rdma); our errors already say
// what happened, so keep UCX quiet unless the user asked for its log. 1.13's new protocol layer picks
// software-emulated GETs over shared memory (see ucx-on-this-machine.md): keep it off unless asked.
// Must run before dlopen: libucs reads its global options in a constructor.
void SetUcxDefaults() {
  setenv("UCX_LOG_LEVEL", "fatal", /*overwrite=*/0);
  setenv("UCX_WARN_UNUSED_ENV_VARS", "n", /*overwrite=*/0);
  // Embedded in Node, UCX must not patch mmap/munmap/brk (its memory hooks rewrite code while
  // V8's threads allocate: seen here as SIGSEGV in V8's allocator) nor take SIGSEGV/SIGBUS
  // (V8 handles WebAssembly bounds checks with them). We register memory explicitly and pass the
  // handle with every operation, so UCX's registration cache needs no memory events.
  setenv("UCX_MEM_EVENTS", "no", /*overwrite=*/0);
  setenv("UCX_MEM_MALLOC_HOOKS", "no", /*overwrite=*/0);
  setenv("UCX_ERROR_SIGNALS", "", /*overwrite=*/0);
  setenv("UCX_HANDLE_ERRORS", "none", /*overwrite=*/0);
  setenv("UCX_PROTO_ENABLE", "n", /*overwrite=*/0);
}

void Load() {
  UcxApi* api = new UcxApi();
  const char* candidates[] = {getenv("PEERCACHE_LIBUCP"), "libucp.so.0", "libucp.so"};
  void* handle = nullptr;
  std::string errors;
  SetUcxDefaults();
  for (const char* name : candidates) {
    if (name == nullptr || *name == '\0') continue;
    handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) break;
    const char* e = dlerror();
    if (!errors.empty()) errors += "; ";
    errors += e != nullptr ? e : name;
  }
  if (handle == nullptr) {
    api->error = "UCX runtime library not found (" + errors +
                 "). Install the distribution's UCX runtime: `apt-get install libucx0` (Debian/Ubuntu) "
                 "or `dnf install ucx` (RHEL), or set PEERCACHE_LIBUCP=/path/to/libucp.so.0";
    g_api = api;
    return;
  }
  std::string missing;
#define PEERCACHE_RESOLVE_FN(name)                                                  \
  api->name = reinterpret_cast<decltype(api->name)>(dlsym(handle, #name));          \
  if (api->name == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(#name);
  PEERCACHE_UCX_FUNCTIONS(PEERCACHE_RESOLVE_FN)
#undef PEERCACHE_RESOLVE_FN
  if (!missing.empty()) {
    api->error = "the UCX library found lacks " + missing + " (UCX >= 1.12 is required)";
    g_api = api;
    return;
  }
  struct link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr) {
    api->library = map->l_name;
  } else {
    api->library = "libucp.so.0";
  }
  api->version = api->ucp_get_version_string();
  api->loaded = true;
  g_api = api;
}

}  // namespace

const UcxApi& Ucx() {
  pthread_once(&g_once, Load);
  return *g_api;
}

std::string StatusText(ucs_status_t status) {
  const UcxApi& api = Ucx();
  if (api.loaded) return api.ucs_status_string(status);
  return "UCX status " + std::to_string(static_cast<int>(status));
}

}  // namespace peercache
