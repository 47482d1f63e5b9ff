// UCX resolved at run time: the addon never links libucp, so it loads (TCP only) where UCX is absent.
#pragma once

#include <ucp/api/ucp.h>

#include <string>

namespace peercache {

// One function pointer per UCX entry point we call. `ucp_init` is inline in the headers; the exported
// `ucp_init_version` is what it calls.
struct UcxApi {
  bool loaded = false;
  std::string error;    // why loading failed (dlerror text and the fix), when !loaded
  std::string library;  // the path dlopen resolved, when loaded
  std::string version;  // ucp_get_version_string()

#define PEERCACHE_UCX_FUNCTIONS(X)        \
  X(ucp_get_version_string)               \
  X(ucp_config_read)                      \
  X(ucp_config_modify)                    \
  X(ucp_config_release)                   \
  X(ucp_init_version)                     \
  X(ucp_cleanup)                          \
  X(ucp_context_print_info)               \
  X(ucp_worker_create)                    \
  X(ucp_worker_destroy)                   \
  X(ucp_worker_get_address)               \
  X(ucp_worker_release_address)           \
  X(ucp_worker_progress)                  \
  X(ucp_worker_get_efd)                   \
  X(ucp_worker_arm)                       \
  X(ucp_worker_fence)                     \
  X(ucp_ep_create)                        \
  X(ucp_ep_close_nbx)                     \
  X(ucp_ep_print_info)                    \
  X(ucp_mem_map)                          \
  X(ucp_mem_unmap)                        \
  X(ucp_mem_query)                        \
  X(ucp_rkey_pack)                        \
  X(ucp_rkey_buffer_release)              \
  X(ucp_ep_rkey_unpack)                   \
  X(ucp_rkey_destroy)                     \
  X(ucp_rkey_ptr)                         \
  X(ucp_get_nbx)                          \
  X(ucp_put_nbx)                          \
  X(ucp_request_check_status)             \
  X(ucp_request_free)                     \
  X(ucs_status_string)

#define PEERCACHE_DECLARE_FN(name) decltype(&::name) name = nullptr;
  PEERCACHE_UCX_FUNCTIONS(PEERCACHE_DECLARE_FN)
#undef PEERCACHE_DECLARE_FN
};

// Loads libucp.so.0 once per process (thread-safe) and returns the table. Never throws.
const UcxApi& Ucx();

// ucs_status_string when UCX is loaded, a number otherwise.
std::string StatusText(ucs_status_t status);

}  // namespace peercache
