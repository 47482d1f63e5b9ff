// A worker's wait loop on the JS thread's libuv loop: the worker's event fd and a timer wake it,
// it progresses UCX and settles finished (or timed-out) batches; nothing spins while JS awaits.
#include <stdlib.h>

#include "common.h"

namespace peercache {

NativeWorker::NativeWorker(AddonData* a, SharedContext* s) : addon(a), shared(s) { RetainContext(shared); }

NativeWorker::~NativeWorker() { ReleaseContext(shared); }

namespace {

void OnPoll(uv_poll_t* handle, int, int) { static_cast<NativeWorker*>(handle->data)->OnWake(); }
void OnTimer(uv_timer_t* handle) { static_cast<NativeWorker*>(handle->data)->OnWake(); }
// The close callback is libc's free itself, not a function of ours: a worker thread's environment
// can unload this addon before libuv runs the closing handles' callbacks.
const uv_close_cb kFreeHandle = reinterpret_cast<uv_close_cb>(&free);

}  // namespace

bool NativeWorker::Init(std::string* error) {
  const UcxApi& api = Ucx();
  ucp_worker_params_t params = {};
  params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  params.thread_mode = UCS_THREAD_MODE_SINGLE;
  ucs_status_t st = api.ucp_worker_create(shared->context, &params, &worker);
  if (st != UCS_OK) {
    *error = "ucp_worker_create failed: " + StatusText(st);
    worker = nullptr;
    return false;
  }
  st = api.ucp_worker_get_efd(worker, &efd);
  if (st != UCS_OK) {
    *error = "ucp_worker_get_efd failed: " + StatusText(st);
    api.ucp_worker_destroy(worker);
    worker = nullptr;
    return false;
  }
  poll = static_cast<uv_poll_t*>(calloc(1, sizeof(uv_poll_t)));
  timer = static_cast<uv_timer_t*>(calloc(1, sizeof(uv_timer_t)));
  uv_poll_init(addon->loop, poll, efd);
  uv_timer_init(addon->loop, timer);
  poll->data = this;
  timer->data = this;
  // The poll lets an idle worker answer peers (connection set-up) without a spinning thread; it
  // must not keep the process alive on its own.
  uv_poll_start(poll, UV_READABLE, OnPoll);
  uv_unref(reinterpret_cast<uv_handle_t*>(poll));
  // A slow heartbeat progresses transports that raise no events; it too keeps nothing alive.
  uv_timer_start(timer, OnTimer, 20, 20);
  uv_unref(reinterpret_cast<uv_handle_t*>(timer));
  api.ucp_worker_arm(worker);
  return true;
}

unsigned NativeWorker::Drain() {
  if (worker == nullptr) return 0;
  unsigned total = 0;
  for (int i = 0; i < 1024; ++i) {
    unsigned n = Ucx().ucp_worker_progress(worker);
    total += n;
    if (n == 0) break;
  }
  return total;
}

void NativeWorker::Kick() {
  if (pending.empty() || closed) return;
  if (!timerActive) {
    // While a batch waits: a 1 ms fallback tick (the efd wakes us sooner where transports signal),
    // and a ref so the process stays alive until the promise settles.
    timerActive = true;
    uv_timer_start(timer, OnTimer, 1, 1);
    uv_ref(reinterpret_cast<uv_handle_t*>(timer));
  }
}

void NativeWorker::OnWake() {
  if (closed || worker == nullptr) return;
  Drain();
  if (!pending.empty()) {
    Napi::Env env = addon->env;
    Napi::HandleScope handles(env);
    Napi::AsyncContext asyncContext(env, "peercache:batch");
    Napi::CallbackScope scope(env, asyncContext);
    uint64_t now = NowNs();
    std::vector<Batch*> still;
    std::vector<Batch*> snapshot;
    snapshot.swap(pending);
    for (Batch* b : snapshot) {
      if (!b->settled && b->remaining > 0 && now > b->deadlineNs) {
        b->TimeOut();
        b->settled = true;
        b->deferred->Reject(MakeError(env, b->error, "ERR_TIMEOUT").Value());
      } else if (!b->settled && b->remaining == 0) {
        b->settled = true;
        if (b->status == UCS_OK) {
          b->deferred->Resolve(env.Undefined());
        } else {
          b->deferred->Reject(MakeError(env, BatchError(*b), "ERR_TRANSFER").Value());
        }
      }
      if (b->settled && b->remaining == 0) {
        b->ReleaseRefs();
        delete b;
      } else {
        still.push_back(b);
      }
    }
    for (Batch* b : pending) still.push_back(b);  // posted while we settled others
    pending.swap(still);
  }
  // Settling ran JS (microtasks), which may have closed this worker.
  if (closed) return;
  if (pending.empty() && timerActive) {
    timerActive = false;
    uv_timer_start(timer, OnTimer, 20, 20);
    uv_unref(reinterpret_cast<uv_handle_t*>(timer));
  }
  // Re-arm the event fd; BUSY means events arrived meanwhile: the next tick or poll handles them.
  if (Ucx().ucp_worker_arm(worker) == UCS_ERR_BUSY) Drain();
}

void NativeWorker::Close() {
  if (closed) return;
  closed = true;
  for (NativeEndpoint* e : endpoints) {
    e->Close(true);
    e->worker = nullptr;
    e->Unref();
  }
  endpoints.clear();
  // Batches still waiting: their requests were completed (with errors) by the forced closes; drop
  // them. Their promises are rejected when possible.
  for (Batch* b : pending) {
    if (!b->settled && b->deferred != nullptr) {
      Napi::Env env = addon->env;
      Napi::HandleScope handles(env);
      b->settled = true;
      b->deferred->Reject(MakeError(env, "worker closed while a batch was in flight", "ERR_CLOSED").Value());
    }
    b->ReleaseRefs();
    delete b;
  }
  pending.clear();
  if (poll != nullptr) {
    uv_poll_stop(poll);
    uv_close(reinterpret_cast<uv_handle_t*>(poll), kFreeHandle);
    poll = nullptr;
  }
  if (timer != nullptr) {
    uv_timer_stop(timer);
    uv_close(reinterpret_cast<uv_handle_t*>(timer), kFreeHandle);
    timer = nullptr;
  }
  if (worker != nullptr) Ucx().ucp_worker_destroy(worker);
  worker = nullptr;
  RemoveFrom(addon->workers, this);
}

}  // namespace peercache
