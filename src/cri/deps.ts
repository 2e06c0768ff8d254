import type { AdapterConfig } from '../config/load';
import type { ContainerdConnection } from '../containerd/connection';
import type { Logger } from '../log/logger';
import type { ImageService } from '../image/service';
import type { CniConfigWatcher } from '../network/cni-config';
import type { SandboxService } from '../sandbox/service';
import type { ContainerService } from '../container/service';
import type { StatsService } from '../stats/service';
import type { StreamingService } from '../streaming/service';
import type { HandlerFeatures } from '../host/runtime-features';
import type { RuntimeEnvironment } from '../oci';

/** What the CRI layer needs from the domain below it. */
export interface CriDeps {
  config: AdapterConfig;
  containerd: ContainerdConnection;
  cni: CniConfigWatcher;
  images: ImageService;
  sandboxes: SandboxService;
  containers: ContainerService;
  stats: StatsService;
  /** Per runtime handler, what its runc supports on this node. */
  runtimeFeatures: ReadonlyMap<string, HandlerFeatures>;
  streaming: StreamingService;
  logger: Logger;
  /** False until the daemon has rebuilt its state from containerd; calls that need that state wait for it. */
  recovered(): boolean;
  /** What was measured of this node at start (what the runtime handlers' features depend on). */
  env: RuntimeEnvironment;
  /** The adapter's own version (package.json). */
  adapterVersion: string;
}
