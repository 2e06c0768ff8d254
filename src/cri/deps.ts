import type { AdapterConfig } from '../config/load';
import type { ContainerdConnection } from '../containerd/connection';
import type { Logger } from '../log/logger';
import type { CniConfigWatcher } from '../network/cni-config';

/** What the CRI layer needs from the domain below it. */
export interface CriDeps {
  config: AdapterConfig;
  containerd: ContainerdConnection;
  cni: CniConfigWatcher;
  logger: Logger;
  /** The adapter's own version (package.json). */
  adapterVersion: string;
}
