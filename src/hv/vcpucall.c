/* Calls into another vCPU's thread.
 *
 * KVM's vCPU ioctls wait while that vCPU is inside KVM_RUN, so a change to
 * another vCPU's state (its timer, its vcpu_info) is handed to the vCPU's
 * own thread: vcpu_call posts it, kicks the thread out of KVM_RUN and waits.
 * Once the thread has left its loop (vcpu_calls_end), calls run on the
 * caller's thread instead: nobody would serve them. */
#include "domus/hv.h"

#include <signal.h>
#include <time.h>

__thread struct vcpu *vcpu_current;

/* Waits up to 1 ms on t's condition (call_lock held). */
static void wait_a_little(struct vcpu *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&t->call_cond, &t->call_lock, &ts);
}

int vcpu_call(struct vcpu *t, int (*fn)(struct vcpu *, void *), void *arg)
{
    if (!t->thread_started || vcpu_current == t)
        return fn(t, arg);
    pthread_mutex_lock(&t->call_lock);
    while (t->call_fn && !t->call_ended) /* one call at a time */
        pthread_cond_wait(&t->call_cond, &t->call_lock);
    if (t->call_ended) {
        int rc = fn(t, arg); /* the thread is gone from KVM_RUN for good */
        pthread_mutex_unlock(&t->call_lock);
        return rc;
    }
    t->call_fn = fn;
    t->call_arg = arg;
    t->call_done = false;
    if (t->d->ops && t->d->ops->kick)
        t->d->ops->kick(t);
    else
        pthread_kill(t->thread, HV_KICK_SIGNAL);
    sched_wake(t); /* it may wait in SCHEDOP_block/poll */
    while (!t->call_done) {
        wait_a_little(t);
        if (vcpu_current && !t->call_done) {
            /* Serve calls aimed at us meanwhile: two vCPUs may call each other. */
            pthread_mutex_unlock(&t->call_lock);
            vcpu_serve_calls(vcpu_current);
            pthread_mutex_lock(&t->call_lock);
        }
    }
    int rc = t->call_rc;
    t->call_fn = NULL;
    pthread_cond_broadcast(&t->call_cond);
    pthread_mutex_unlock(&t->call_lock);
    return rc;
}

/* Runs v's posted call, if any (call_lock held). */
static void serve_locked(struct vcpu *v)
{
    if (v->call_fn && !v->call_done) {
        v->call_rc = v->call_fn(v, v->call_arg);
        v->call_done = true;
        pthread_cond_broadcast(&v->call_cond);
    }
}

void vcpu_serve_calls(struct vcpu *v)
{
    pthread_mutex_lock(&v->call_lock);
    serve_locked(v);
    pthread_mutex_unlock(&v->call_lock);
}

void vcpu_calls_end(struct vcpu *v)
{
    pthread_mutex_lock(&v->call_lock);
    serve_locked(v);
    v->call_ended = true;
    pthread_cond_broadcast(&v->call_cond);
    pthread_mutex_unlock(&v->call_lock);
}
