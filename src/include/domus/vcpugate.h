/* The gate vCPU threads pass before each entry into the guest: it makes a
 * pause synchronous.  kvm.c keeps one per domain; it knows nothing of KVM,
 * so the unit tests drive it with plain threads.
 *
 * Locking: g->lock guards every field.  Lock order with a vCPU's call_lock
 * (kvm.c's vcpu_call): call_lock, then g->lock; a parked thread never holds
 * g->lock while it serves a call. */
#ifndef DOMUS_VCPUGATE_H
#define DOMUS_VCPUGATE_H

#include <pthread.h>
#include <stdbool.h>

struct vcpu_gate {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* any field below changed */
    bool paused, stopping;
    unsigned threads; /* entered and not left */
    unsigned parked;  /* of those, waiting in vcpu_gate_park */
    unsigned wakes;   /* vcpu_gate_wake calls */
};

void vcpu_gate_init(struct vcpu_gate *g);
void vcpu_gate_destroy(struct vcpu_gate *g);

/* A vCPU thread is about to start (called by its creator) / has ended
 * (called by the thread as it returns, or by the creator when the thread
 * could not be created). */
void vcpu_gate_enter(struct vcpu_gate *g);
void vcpu_gate_leave(struct vcpu_gate *g);

/* Pauses: marks the gate closed, calls kick(arg) once so that threads inside
 * the guest come out (the caller's kick must make a thread's next guest
 * entry return at once, as KVM's immediate_exit does), and returns only
 * when every thread entered is parked or has left.  Idempotent. */
void vcpu_gate_pause(struct vcpu_gate *g, void (*kick)(void *), void *arg);

/* Closes the gate without kicking or waiting: threads park at their next
 * vcpu_gate_park.  For a vCPU thread stopping the others and then itself
 * (a guest's suspend), which must not wait for its own parking. */
void vcpu_gate_close(struct vcpu_gate *g);

/* Opens the gate: parked threads go on. */
void vcpu_gate_unpause(struct vcpu_gate *g);

/* For good (domain destroy): parked threads return from vcpu_gate_park and
 * later calls return at once; a pause in progress ends when the threads
 * have left. */
void vcpu_gate_stop(struct vcpu_gate *g);

/* Wakes parked threads so that they run their serve callback (a call
 * another thread queued for one of them). */
void vcpu_gate_wake(struct vcpu_gate *g);

/* Called by a vCPU thread before each guest entry: returns at once while the
 * gate is open; while it is closed, the thread is counted parked and waits
 * for unpause or stop, calling serve(arg) first and after every wake. */
void vcpu_gate_park(struct vcpu_gate *g, void (*serve)(void *), void *arg);

bool vcpu_gate_paused(struct vcpu_gate *g);

#endif
