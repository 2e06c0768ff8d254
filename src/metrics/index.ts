import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The adapter's Prometheus metrics, one module-level registry that every
 * layer may import (it sits below the domains and the containerd client and
 * imports nothing of the adapter). Counting is always on and costs a few
 * additions per event; only serving them over HTTP (server.ts) is optional.
 *
 * Label values are bounded sets only: RPC names, containerd service/method
 * names, gRPC code names, CNI plugin types from the node's config, error
 * kinds. Never an ID, an image name or a path.
 *
 * Hot paths take a meter bound once to its labels (`criOperationMeter`,
 * `containerdCallMeter`), so a call allocates no label object: prom-client's
 * `labels(...)` children are resolved at bind time.
 */
export const registry = new Registry();

/** 0.5 ms to 60 s: a warm Status is under a millisecond, a cold pull or a slow CNI plugin up to a minute. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const operations = new Counter({
  name: 'cri_adapter_operations_total',
  help: 'CRI RPCs answered, by RPC name.',
  labelNames: ['operation'] as const,
  registers: [registry],
});
const operationErrors = new Counter({
  name: 'cri_adapter_operation_errors_total',
  help: 'CRI RPCs answered with an error, by RPC name and gRPC code.',
  labelNames: ['operation', 'code'] as const,
  registers: [registry],
});
const operationDuration = new Histogram({
  name: 'cri_adapter_operation_duration_seconds',
  help: 'Time from receiving a CRI RPC to answering it (including containerd calls it made).',
  labelNames: ['operation'] as const,
  buckets: DURATION_BUCKETS,
  registers: [registry],
});

const containerdOperations = new Counter({
  name: 'cri_adapter_containerd_operations_total',
  help: 'Unary calls to containerd, by service and method.',
  labelNames: ['service', 'method'] as const,
  registers: [registry],
});
const containerdErrors = new Counter({
  name: 'cri_adapter_containerd_operation_errors_total',
  help: 'Unary calls to containerd that failed, by service, method and gRPC code.',
  labelNames: ['service', 'method', 'code'] as const,
  registers: [registry],
});
const containerdDuration = new Histogram({
  name: 'cri_adapter_containerd_operation_duration_seconds',
  help: 'Round trip of a unary containerd call, by service and method.',
  labelNames: ['service', 'method'] as const,
  buckets: DURATION_BUCKETS,
  registers: [registry],
});

const cniDuration = new Histogram({
  name: 'cri_adapter_cni_plugin_duration_seconds',
  help: 'Run time of one CNI plugin execution, by plugin type and command (ADD, DEL, CHECK).',
  labelNames: ['plugin', 'command'] as const,
  buckets: DURATION_BUCKETS,
  registers: [registry],
});
const cniFailures = new Counter({
  name: 'cri_adapter_cni_plugin_failures_total',
  help: 'CNI plugin executions that failed, timed out or were cancelled, by plugin type and command.',
  labelNames: ['plugin', 'command'] as const,
  registers: [registry],
});

const pullDuration = new Histogram({
  name: 'cri_adapter_image_pull_duration_seconds',
  help: 'Time of image pulls that succeeded, from resolving the reference to writing the image records.',
  buckets: DURATION_BUCKETS,
  registers: [registry],
});
const pullBytes = new Counter({
  name: 'cri_adapter_image_pull_bytes_total',
  help: 'Bytes of blobs written into containerd\'s content store by pulls (blobs already present are not counted).',
  registers: [registry],
});
const pullFailures = new Counter({
  name: 'cri_adapter_image_pull_failures_total',
  help: 'Image pulls that failed, by reason (the error kind: NotFound, FailedPrecondition for auth, DeadlineExceeded, ...).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

const containerExits = new Counter({
  name: 'cri_adapter_container_exits_total',
  help: 'Container exits recorded (from events, stops or reconciliation).',
  registers: [registry],
});
const containerOomKills = new Counter({
  name: 'cri_adapter_container_oom_kills_total',
  help: 'Container exits recorded as OOMKilled.',
  registers: [registry],
});

const streamingSessions = new Gauge({
  name: 'cri_adapter_streaming_sessions',
  help: 'Streaming sessions (exec, attach, portforward) connected now.',
  labelNames: ['kind'] as const,
  registers: [registry],
});

const logBytesWritten = new Counter({
  name: 'cri_adapter_log_bytes_written_total',
  help: 'Bytes written to container log files (CRI format, with timestamps and tags).',
  registers: [registry],
});
const logBytesDropped = new Counter({
  name: 'cri_adapter_log_bytes_dropped_total',
  help: 'Bytes of container log output dropped (write errors such as a full disk, or writes after close).',
  registers: [registry],
});

const reconcilePasses = new Counter({
  name: 'cri_adapter_reconcile_passes_total',
  help: 'Reconcile passes after a gap in containerd\'s event stream, by what they check (sandboxes, containers).',
  labelNames: ['kind'] as const,
  registers: [registry],
});
const reconcileCorrections = new Counter({
  name: 'cri_adapter_reconcile_corrections_total',
  help: 'What reconcile passes corrected, by kind of correction (sandbox_notready, container_exit, container_task_lost).',
  labelNames: ['correction'] as const,
  registers: [registry],
});

const criConnectionsAccepted = new Counter({
  name: 'cri_adapter_cri_connections_total',
  help: 'CRI connections served, by path: native (the socket handed to the HTTP/2 server) or rewritten (through the :authority rewriter, for old gRPC clients and connections idle before their first call).',
  labelNames: ['path'] as const,
  registers: [registry],
});

let processMetrics = false;
/**
 * Turns on prom-client's process and Node metrics (RSS, heap, open FDs, CPU,
 * event-loop lag as nodejs_eventloop_lag_*). Done by the daemon, not at
 * import, so unit tests importing this module start no samplers.
 */
export function enableProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
}

/** A counter, a histogram and per-code error counters bound to one label set. */
export interface CallMeter {
  /** Records one finished call; `code` is the gRPC code name of a failure, undefined on success. */
  done(seconds: number, code?: string): void;
}

function meter(total: { inc(): void }, duration: { observe(v: number): void }, errorChild: (code: string) => { inc(): void }): CallMeter {
  // Few distinct codes per operation: bind each once.
  const errors = new Map<string, { inc(): void }>();
  return {
    done(seconds, code) {
      total.inc();
      duration.observe(seconds);
      if (code === undefined) return;
      let e = errors.get(code);
      if (!e) {
        e = errorChild(code);
        errors.set(code, e);
      }
      e.inc();
    },
  };
}

/** Bound once per CRI RPC by the dispatch wrapper. */
export function criOperationMeter(operation: string): CallMeter {
  return meter(operations.labels(operation), operationDuration.labels(operation), (code) => operationErrors.labels(operation, code));
}

/** Bound once per containerd method by the containerd client layer. */
export function containerdCallMeter(service: string, method: string): CallMeter {
  return meter(containerdOperations.labels(service, method), containerdDuration.labels(service, method), (code) =>
    containerdErrors.labels(service, method, code),
  );
}

/** One CNI plugin execution. */
export function recordCniPluginRun(plugin: string, command: string, seconds: number, failed: boolean): void {
  cniDuration.labels(plugin, command).observe(seconds);
  if (failed) cniFailures.labels(plugin, command).inc();
}

export const imagePulls = {
  succeeded(seconds: number): void {
    pullDuration.observe(seconds);
  },
  failed(reason: string): void {
    pullFailures.labels(reason).inc();
  },
  bytes(n: number): void {
    if (n > 0) pullBytes.inc(n);
  },
};

export const containerMetrics = {
  exited(oomKilled: boolean): void {
    containerExits.inc();
    if (oomKilled) containerOomKills.inc();
  },
};

export type StreamingKind = 'exec' | 'attach' | 'portforward';
export const streamingMetrics = {
  opened(kind: StreamingKind): void {
    streamingSessions.labels(kind).inc();
  },
  closed(kind: StreamingKind): void {
    streamingSessions.labels(kind).dec();
  },
};

export const logMetrics = {
  written(n: number): void {
    if (n > 0) logBytesWritten.inc(n);
  },
  dropped(n: number): void {
    if (n > 0) logBytesDropped.inc(n);
  },
};

export const criConnections = {
  accepted(path: 'native' | 'rewritten'): void {
    criConnectionsAccepted.labels(path).inc();
  },
};

export type ReconcileCorrection = 'sandbox_notready' | 'container_exit' | 'container_task_lost';
export const reconcileMetrics = {
  pass(kind: 'sandboxes' | 'containers'): void {
    reconcilePasses.labels(kind).inc();
  },
  corrected(correction: ReconcileCorrection): void {
    reconcileCorrections.labels(correction).inc();
  },
};
