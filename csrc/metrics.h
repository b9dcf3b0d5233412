/* metrics.h: the request counters a worker keeps for --metrics-bind, in a block of memory the
 * master shares with it (an anonymous MAP_SHARED mmap) and reads when Prometheus scrapes.
 *
 * Every function takes the block or NULL (no --metrics-bind: nothing is counted) and writes
 * with relaxed atomics: app threads end requests concurrently (--threads N). The counting
 * touches no Python; aw_metrics_export adds the block's layout and reader to the module.
 */
#ifndef AW_METRICS_H
#define AW_METRICS_H

#include "compat.h"

#include <stdint.h>

#define AW_METRICS_METHODS 8  /* GET HEAD POST PUT DELETE PATCH OPTIONS, then any other */
#define AW_METRICS_CLASSES 6  /* 1xx 2xx 3xx 4xx 5xx, then any other status */
#define AW_METRICS_BUCKETS 15 /* request durations: 14 upper bounds (metrics.c), then +Inf */

/* The block's layout; 8-byte fields, so that every one is naturally aligned. */
typedef struct aw_metrics {
    uint64_t requests[AW_METRICS_CLASSES][AW_METRICS_METHODS];
    uint64_t duration[AW_METRICS_BUCKETS]; /* per bucket, not cumulative */
    uint64_t duration_ns;                  /* the sum of the durations */
    uint64_t body_bytes;                   /* response bodies sent */
    int64_t connections;                   /* open now */
    int64_t in_flight;                     /* requests begun (head complete) and not ended */
    int64_t queued;                        /* complete requests waiting for an app thread */
} aw_metrics_t;

void aw_metrics_begin(aw_metrics_t *m);
void aw_metrics_end(aw_metrics_t *m, int begun, int method, int status, uint64_t body_bytes,
                    double seconds);
void aw_metrics_cut(aw_metrics_t *m);
void aw_metrics_connections(aw_metrics_t *m, int delta);
void aw_metrics_queued(aw_metrics_t *m, int64_t n);
int aw_metrics_export(PyObject *module);

#endif
