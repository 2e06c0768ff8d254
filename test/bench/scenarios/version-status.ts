import { compare } from '../measure';
import type { BenchRow, Scenario } from '../types';

/**
 * The cost of the adapter's gRPC edge: Version and Status through the
 * adapter against containerd's own Version called directly (the floor an
 * adapter in front of containerd cannot beat), and against containerd's
 * built-in CRI plugin answering the same CRI call.
 */
export const versionStatus: Scenario = {
  name: 'version-status',
  async run({ adapter, criPlugin, containerd }) {
    const floor = () => containerd.version.version({});
    const rows: BenchRow[] = [];
    const v = await compare(() => adapter.client.runtime.version({ version: '' }), floor);
    rows.push({ scenario: 'Version', subject: 'cri-adapter', reference: 'containerd Version (direct)', subjectSample: v.subject, referenceSample: v.reference });
    const s = await compare(() => adapter.client.runtime.status({ verbose: false }), floor);
    rows.push({ scenario: 'Status', subject: 'cri-adapter', reference: 'containerd Version (direct)', subjectSample: s.subject, referenceSample: s.reference });
    const c = await compare(
      () => adapter.client.runtime.version({ version: '' }),
      () => criPlugin.runtime.version({ version: '' }),
    );
    rows.push({ scenario: 'Version', subject: 'cri-adapter', reference: "containerd's CRI plugin", subjectSample: c.subject, referenceSample: c.reference });
    const cs = await compare(
      () => adapter.client.runtime.status({ verbose: false }),
      () => criPlugin.runtime.status({ verbose: false }),
    );
    rows.push({ scenario: 'Status', subject: 'cri-adapter', reference: "containerd's CRI plugin", subjectSample: cs.subject, referenceSample: cs.reference });
    return rows;
  },
};
