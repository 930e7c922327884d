/* Unit tests of the vCPU gate behind the synchronous pause (vcpugate.h):
 * plain threads stand for vCPUs, a flag for KVM_RUN's immediate_exit. */
#include "domus/vcpugate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "check.h"

#define NTHREADS 4
static struct vcpu_gate gate;
static atomic_int in_guest, runs, stop_threads;
static atomic_bool kicked[NTHREADS], call_pending, call_done;
static pthread_t threads[NTHREADS];

static void serve(void *arg)
{
    if ((long)arg == 0 && atomic_exchange(&call_pending, false))
        atomic_store(&call_done, true);
}

/* A vCPU thread: the gate, then "the guest" until kicked. */
static void *vcpu(void *arg)
{
    long id = (long)arg;
    while (!atomic_load(&stop_threads)) {
        vcpu_gate_park(&gate, serve, arg);
        if (atomic_load(&stop_threads))
            break;
        atomic_fetch_add(&in_guest, 1);
        while (!atomic_exchange(&kicked[id], false) && !atomic_load(&stop_threads))
            nanosleep(&(struct timespec){0, 50000}, NULL);
        atomic_fetch_sub(&in_guest, 1);
        atomic_fetch_add(&runs, 1);
    }
    vcpu_gate_leave(&gate);
    return NULL;
}

static void kick(void *arg)
{
    (void)arg;
    for (int i = 0; i < NTHREADS; i++)
        atomic_store(&kicked[i], true);
}

static bool wait_for(atomic_bool *flag, int ms)
{
    for (int i = 0; i < ms && !atomic_load(flag); i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    return atomic_load(flag);
}

static void test_gate(void)
{
    vcpu_gate_init(&gate);
    for (long i = 0; i < NTHREADS; i++) {
        vcpu_gate_enter(&gate);
        pthread_create(&threads[i], NULL, vcpu, (void *)i);
    }
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    bool all_out = true, still = true;
    for (int round = 0; round < 50; round++) {
        vcpu_gate_pause(&gate, kick, NULL);
        all_out = all_out && atomic_load(&in_guest) == 0 && gate.parked == NTHREADS;
        vcpu_gate_unpause(&gate);
    }
    CHECK("gate: pause returns with every thread out of the guest and parked (50 rounds)",
          all_out);
    vcpu_gate_pause(&gate, kick, NULL);
    int before = atomic_load(&runs);
    nanosleep(&(struct timespec){0, 30000000}, NULL);
    still = atomic_load(&runs) == before && atomic_load(&in_guest) == 0;
    CHECK("gate: nobody enters while paused", still && vcpu_gate_paused(&gate));
    vcpu_gate_pause(&gate, kick, NULL);
    CHECK("gate: a second pause returns at once", gate.parked == NTHREADS);
    atomic_store(&call_pending, true);
    vcpu_gate_wake(&gate);
    CHECK("gate: a parked thread serves a call when woken", wait_for(&call_done, 2000));
    vcpu_gate_unpause(&gate);
    kick(NULL);
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    /* A guest's suspend: the gate closes without waiting (a vCPU thread
     * cannot wait for its own parking); kicked threads park by themselves
     * and a later pause finds them all parked. */
    vcpu_gate_close(&gate);
    CHECK("gate: close returns at once, the gate paused", vcpu_gate_paused(&gate));
    kick(NULL);
    for (int i = 0; i < 2000 && gate.parked < NTHREADS; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    CHECK("gate: after a close, kicked threads park by themselves",
          gate.parked == NTHREADS && atomic_load(&in_guest) == 0);
    vcpu_gate_pause(&gate, kick, NULL);
    CHECK("gate: a pause after a close returns with all parked", gate.parked == NTHREADS);
    before = atomic_load(&runs);
    vcpu_gate_unpause(&gate);
    kick(NULL);
    for (int i = 0; i < 2000 && atomic_load(&runs) == before; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    CHECK("gate: unpause lets them run again", atomic_load(&runs) > before);
    vcpu_gate_pause(&gate, kick, NULL);
    atomic_store(&stop_threads, 1);
    vcpu_gate_stop(&gate);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(threads[i], NULL);
    CHECK("gate: stop releases parked threads", gate.threads == 0 && gate.parked == 0);
    vcpu_gate_pause(&gate, kick, NULL);
    CHECK("gate: pause with no thread returns", gate.paused);
    vcpu_gate_destroy(&gate);
}

int main(void)
{
    test_gate();
    return failures ? 1 : 0;
}
