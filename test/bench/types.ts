import type { ContainerdConnection } from '../../src/containerd/connection';
import type { Harness } from '../harness';
import type { AdapterProcess } from '../support/adapter-process';
import type { CriClient } from '../support/cri-client';
import type { Sample } from './measure';

/** Everything a scenario may drive, set up once per `npm run bench`. */
export interface BenchContext {
  harness: Harness;
  /** The adapter under test, through its CRI socket. */
  adapter: AdapterProcess;
  /** The port of the adapter's metrics endpoint (Node heap figures for memory notes). */
  adapterMetricsPort: number;
  /** containerd's built-in CRI plugin, on containerd's own socket (the same containerd). */
  criPlugin: CriClient;
  /** A direct client to containerd's API, for floors. */
  containerd: ContainerdConnection;
  /** Text printed after the results table (a scenario's own tables). */
  print(text: string): void;
}

/** One line of the results table: the subject, what it is compared against, and both samples. */
export interface BenchRow {
  scenario: string;
  subject: string;
  reference: string;
  subjectSample: Sample;
  referenceSample: Sample;
  note?: string;
}

/** A scenario is one file in scenarios/ exporting one of these. */
export interface Scenario {
  name: string;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}
