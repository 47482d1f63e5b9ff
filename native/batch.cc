// A batch of one-sided ops posted together: its references, its completion callback, its errors.
#include <time.h>

#include "common.h"

namespace peercache {

uint64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

void Batch::ReleaseRefs() {
  for (NativeRegion* r : locals) r->Unref();
  locals.clear();
  if (remote != nullptr) remote->Unref();
  remote = nullptr;
  if (endpoint != nullptr) {
    --endpoint->inflight;
    endpoint->Unref();
  }
  endpoint = nullptr;
  delete deferred;
  deferred = nullptr;
}

void OnOpDone(void* request, ucs_status_t status, void* userData) {
  Batch* b = static_cast<Batch*>(userData);
  if (status != UCS_OK && b->status == UCS_OK) b->status = status;
  --b->remaining;
  Ucx().ucp_request_free(request);
}

std::string BatchError(const Batch& b) {
  if (!b.error.empty()) return b.error;
  return std::string(b.isWrite ? "WRITE" : "READ") + " batch of " + std::to_string(b.count) +
         " ops failed: " + StatusText(b.status);
}

void Batch::TimeOut() {
  error = std::string(isWrite ? "WRITE" : "READ") + " batch of " + std::to_string(count) +
          " ops timed out (peer unresponsive); the endpoint was closed";
  if (endpoint == nullptr) return;
  endpoint->failure = "a batch timed out";
  NativeEndpoint* ep = endpoint;
  ep->Ref();
  ep->Close(true);  // completes the outstanding requests with errors
  ep->Unref();
}

}  // namespace peercache
