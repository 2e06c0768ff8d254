import { EventEmitter } from 'node:events';
import { Channel, ChannelOptions, Client, credentials, ServiceDefinition } from '@grpc/grpc-js';
import { ContainersClient, ContainersService } from '../gen/containerd/services/containers/v1/containers';
import { ContentClient, ContentService } from '../gen/containerd/services/content/v1/content';
import { DiffClient, DiffService } from '../gen/containerd/services/diff/v1/diff';
import { EventsClient, EventsService } from '../gen/containerd/services/events/v1/events';
import { ImagesClient, ImagesService } from '../gen/containerd/services/images/v1/images';
import { IntrospectionClient, IntrospectionService } from '../gen/containerd/services/introspection/v1/introspection';
import { LeasesClient, LeasesService } from '../gen/containerd/services/leases/v1/leases';
import { NamespacesClient, NamespacesService } from '../gen/containerd/services/namespaces/v1/namespace';
import { SnapshotsClient, SnapshotsService } from '../gen/containerd/services/snapshots/v1/snapshots';
import { TasksClient, TasksService } from '../gen/containerd/services/tasks/v1/tasks';
import { VersionClient, VersionService } from '../gen/containerd/services/version/v1/version';
import { AlreadyExistsError, UnavailableError } from '../errors';
import type { Logger } from '../log/logger';
import { CallDefaults, unaryMethods, UnaryMethods } from './call';

export interface ContainerdOptions {
  address: string;
  namespace: string;
  /** Deadline for calls whose caller gave none. */
  callTimeoutMs: number;
  /** How often the health probe asks containerd for its version. */
  probeIntervalMs?: number;
}

/** containerd's identity as last seen by the health probe. */
export interface ContainerdVersion {
  version: string;
  revision: string;
}

type ClientCtor<C> = new (address: string, creds: ReturnType<typeof credentials.createInsecure>, options: object) => C;

// grpc-js defaults to reconnect backoffs of up to two minutes; a restarted
// containerd on the same host should be picked up within a couple of seconds.
const CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2000,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  // No channelz service reads it; its per-call bookkeeping costs every containerd call.
  'grpc.enable_channelz': 0,
};

/**
 * The one connection to containerd. It owns a single channel shared by every
 * service client, stamps the namespace on every call, and runs a health
 * probe: `ready` is true only while containerd answers. Events: 'ready'
 * (after connect or reconnect, once the namespace exists) and 'lost'.
 */
export class ContainerdConnection extends EventEmitter {
  readonly namespace: string;
  readonly address: string;
  private readonly channel: Channel;
  private readonly defaults: CallDefaults;
  private readonly rawClients: Client[] = [];
  private probeTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastError = 'not probed yet';
  private serverVersion: ContainerdVersion | undefined;
  private isReady = false;

  readonly version: UnaryMethods<VersionClient>;
  readonly namespaces: UnaryMethods<NamespacesClient>;
  readonly containers: UnaryMethods<ContainersClient>;
  readonly tasks: UnaryMethods<TasksClient>;
  readonly snapshots: UnaryMethods<SnapshotsClient>;
  readonly content: UnaryMethods<ContentClient>;
  readonly images: UnaryMethods<ImagesClient>;
  readonly diff: UnaryMethods<DiffClient>;
  readonly leases: UnaryMethods<LeasesClient>;
  readonly events: UnaryMethods<EventsClient>;
  readonly introspection: UnaryMethods<IntrospectionClient>;
  /** Raw clients for streaming methods (Content.Write/Read, Events.Subscribe). */
  readonly streaming: { content: ContentClient; events: EventsClient };

  constructor(
    private readonly options: ContainerdOptions,
    private readonly logger: Logger,
  ) {
    super();
    this.namespace = options.namespace;
    this.address = options.address;
    this.defaults = { namespace: options.namespace, timeoutMs: options.callTimeoutMs };
    const target = `unix://${options.address}`;
    this.channel = new Channel(target, credentials.createInsecure(), CHANNEL_OPTIONS);

    const make = <C extends Client>(Ctor: ClientCtor<C>, def: ServiceDefinition, name: string) => {
      const client = new Ctor(target, credentials.createInsecure(), { channelOverride: this.channel });
      this.rawClients.push(client);
      return { client, methods: unaryMethods(client, def, name, this.defaults) };
    };
    this.version = make(VersionClient, VersionService, 'Version').methods;
    this.namespaces = make(NamespacesClient, NamespacesService, 'Namespaces').methods;
    this.containers = make(ContainersClient, ContainersService, 'Containers').methods;
    this.tasks = make(TasksClient, TasksService, 'Tasks').methods;
    this.snapshots = make(SnapshotsClient, SnapshotsService, 'Snapshots').methods;
    const content = make(ContentClient, ContentService, 'Content');
    this.content = content.methods;
    this.images = make(ImagesClient, ImagesService, 'Images').methods;
    this.diff = make(DiffClient, DiffService, 'Diff').methods;
    this.leases = make(LeasesClient, LeasesService, 'Leases').methods;
    const events = make(EventsClient, EventsService, 'Events');
    this.events = events.methods;
    this.introspection = make(IntrospectionClient, IntrospectionService, 'Introspection').methods;
    this.streaming = { content: content.client, events: events.client };
  }

  get callDefaults(): CallDefaults {
    return this.defaults;
  }

  get ready(): boolean {
    return this.isReady;
  }

  /** Why containerd is not ready, for Status's message. */
  get notReadyReason(): string {
    return this.lastError;
  }

  get lastSeenVersion(): ContainerdVersion | undefined {
    return this.serverVersion;
  }

  /** Starts the health probe; resolves after the first probe either way. */
  async start(): Promise<void> {
    await this.probe();
  }

  /** Waits until containerd is ready, or rejects when the signal fires. */
  async waitReady(signal?: AbortSignal): Promise<void> {
    if (this.isReady) return;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.off('ready', onReady);
        reject(new UnavailableError(`containerd at ${this.address} is not available: ${this.lastError}`));
      };
      const onReady = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.once('ready', onReady);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.probeTimer = setTimeout(() => void this.probe(), delayMs);
    this.probeTimer.unref();
  }

  private async probe(): Promise<void> {
    const interval = this.options.probeIntervalMs ?? 1000;
    try {
      const v = await this.version.version({}, { deadline: Date.now() + 2000 });
      this.serverVersion = { version: v.version, revision: v.revision };
      if (!this.isReady) {
        await this.ensureNamespace();
        this.isReady = true;
        this.lastError = '';
        this.logger.info('containerd is ready', { address: this.address, version: v.version, namespace: this.namespace });
        this.emit('ready');
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (this.isReady || this.lastError !== message) {
        this.logger.warn('containerd is not answering', { address: this.address, error: message });
      }
      this.lastError = message;
      if (this.isReady) {
        this.isReady = false;
        this.emit('lost');
      }
    }
    this.schedule(interval);
  }

  private async ensureNamespace(): Promise<void> {
    try {
      await this.namespaces.create({
        namespace: { name: this.namespace, labels: { 'io.cri-adapter.owner': 'cri-adapter' } },
      });
      this.logger.info('created containerd namespace', { namespace: this.namespace });
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
    }
  }

  close(): void {
    this.stopped = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    for (const c of this.rawClients) c.close();
    this.channel.close();
  }
}
