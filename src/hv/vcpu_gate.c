/* The vCPU threads' gate: a synchronous pause (vcpugate.h). */
#include "domus/vcpugate.h"

void vcpu_gate_init(struct vcpu_gate *g)
{
    *g = (struct vcpu_gate){0};
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

void vcpu_gate_destroy(struct vcpu_gate *g)
{
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

void vcpu_gate_enter(struct vcpu_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->threads++;
    pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_leave(struct vcpu_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->threads--;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_pause(struct vcpu_gate *g, void (*kick)(void *), void *arg)
{
    pthread_mutex_lock(&g->lock);
    g->paused = true;
    pthread_mutex_unlock(&g->lock);
    if (kick)
        kick(arg);
    pthread_mutex_lock(&g->lock);
    while (g->paused && g->parked < g->threads)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_close(struct vcpu_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->paused = true;
    pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_unpause(struct vcpu_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->paused = false;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_stop(struct vcpu_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_wake(struct vcpu_gate *g)
{
    pthread_mutex_lock(&g->lock);
    g->wakes++;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

void vcpu_gate_park(struct vcpu_gate *g, void (*serve)(void *), void *arg)
{
    pthread_mutex_lock(&g->lock);
    if (!g->paused || g->stopping) {
        pthread_mutex_unlock(&g->lock);
        return;
    }
    g->parked++;
    pthread_cond_broadcast(&g->cond);
    while (g->paused && !g->stopping) {
        unsigned seen = g->wakes;
        pthread_mutex_unlock(&g->lock);
        if (serve)
            serve(arg);
        pthread_mutex_lock(&g->lock);
        while (g->paused && !g->stopping && g->wakes == seen)
            pthread_cond_wait(&g->cond, &g->lock);
    }
    g->parked--;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

bool vcpu_gate_paused(struct vcpu_gate *g)
{
    pthread_mutex_lock(&g->lock);
    bool p = g->paused;
    pthread_mutex_unlock(&g->lock);
    return p;
}
