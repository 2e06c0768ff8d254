import { EventEmitter } from 'node:events';
import type { ClientReadableStream } from '@grpc/grpc-js';
import { callMetadata } from '../containerd/call';
import type { ContainerdConnection } from '../containerd/connection';
import { TaskExit, TaskOOM } from '../gen/containerd/events/task';
import type { Envelope } from '../gen/containerd/services/events/v1/events';
import type { Timestamp } from '../gen/google/protobuf/timestamp';
import type { Logger } from '../log/logger';

export interface TaskExitEvent {
  containerId: string;
  /** Exec ID; equal to containerId for the container's main process. */
  execId: string;
  pid: number;
  exitStatus: number;
  /** Nanoseconds since the epoch. */
  exitedAt: bigint;
}

export function timestampToNs(ts: Timestamp | undefined): bigint {
  if (!ts) return 0n;
  return ts.seconds * 1_000_000_000n + BigInt(ts.nanos);
}

/**
 * One subscription to containerd's task events for the adapter's namespace.
 * Emits 'exit' (TaskExitEvent), 'oom' (containerId) and 'resync' whenever
 * the stream was (re)established after a gap: events may have been missed,
 * so listeners reconcile against Tasks.Get.
 */
export class EventMonitor extends EventEmitter {
  private stream: ClientReadableStream<Envelope> | undefined;
  private stopped = false;

  constructor(
    private readonly conn: ContainerdConnection,
    private readonly logger: Logger,
  ) {
    super();
  }

  start(): void {
    this.conn.on('ready', () => this.subscribe());
    if (this.conn.ready) this.subscribe();
  }

  private subscribe(): void {
    if (this.stopped || this.stream) return;
    // One comma-joined filter ANDs its conditions; separate filters would be OR'ed.
    const filter = `topic~="/tasks/",namespace==${this.conn.namespace}`;
    const md = callMetadata(this.conn.callDefaults);
    const stream = this.conn.streaming.events.subscribe({ filters: [filter] }, md, {});
    this.stream = stream;
    stream.on('data', (env: Envelope) => this.dispatch(env));
    const lost = (why: string) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      if (this.stopped) return;
      this.logger.warn('containerd event stream ended; resubscribing', { reason: why });
      // Resubscribe when containerd is back; if it still is, soon.
      setTimeout(() => {
        if (this.conn.ready) this.subscribe();
      }, 500).unref();
    };
    stream.on('error', (err: Error) => lost(err.message));
    stream.on('end', () => lost('end of stream'));
    // Whatever happened before this subscription is not in the stream.
    setImmediate(() => this.emit('resync'));
  }

  private dispatch(env: Envelope): void {
    const any = env.event;
    if (!any) return;
    try {
      switch (any.typeUrl) {
        case 'containerd.events.TaskExit': {
          const e = TaskExit.decode(any.value);
          const event: TaskExitEvent = {
            containerId: e.containerId,
            execId: e.id,
            pid: e.pid,
            exitStatus: e.exitStatus,
            exitedAt: timestampToNs(e.exitedAt),
          };
          this.emit('exit', event);
          break;
        }
        case 'containerd.events.TaskOOM':
          this.emit('oom', TaskOOM.decode(any.value).containerId);
          break;
        default:
          break;
      }
    } catch (err) {
      this.logger.warn('undecodable containerd event', { topic: env.topic, typeUrl: any.typeUrl, error: (err as Error).message });
    }
  }

  stop(): void {
    this.stopped = true;
    this.stream?.cancel();
    this.stream = undefined;
  }
}
