import { promises as fs } from 'node:fs';
import path from 'node:path';
import { readJsonFile, writeFileAtomic } from '../util/atomic-file';
import { ContainerRecord, ContainerStatusFields, toStatusFields } from './model';

function statusPath(root: string, id: string): string {
  return path.join(root, 'containers', id, 'status.json');
}

/** State transitions go to disk before they are reported, so a restart never reports an older state. */
export function writeContainerStatus(root: string, record: ContainerRecord): Promise<void> {
  return writeFileAtomic(statusPath(root, record.id), JSON.stringify(toStatusFields(record)));
}

export function readContainerStatus(root: string, id: string): Promise<ContainerStatusFields | undefined> {
  return readJsonFile<ContainerStatusFields>(statusPath(root, id));
}

export async function removeContainerStatus(root: string, id: string): Promise<void> {
  await fs.rm(path.dirname(statusPath(root, id)), { recursive: true, force: true });
}
