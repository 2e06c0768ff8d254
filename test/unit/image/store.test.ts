import { ImageEntry, ImageStore } from '../../../src/image/store';

const ID = `sha256:${'a'.repeat(64)}`;

function entry(): ImageEntry {
  return {
    id: ID,
    repoTags: ['example.com/app:1', 'example.com/app:latest'],
    repoDigests: [`example.com/app@sha256:${'b'.repeat(64)}`],
    size: 10,
    config: {},
    chainId: undefined,
    recordNames: ['example.com/app:1', 'example.com/app:latest', `example.com/app@sha256:${'b'.repeat(64)}`, ID],
  };
}

describe('ImageStore.forgetNames (records removed behind the adapter)', () => {
  it('drops a vanished tag but keeps the image while other records remain', () => {
    const store = new ImageStore();
    store.put(entry());
    expect(store.forgetNames(['example.com/app:latest'])).toEqual([]);
    expect(store.resolve('example.com/app:latest')).toBeUndefined();
    expect(store.resolve('example.com/app:1')?.repoTags).toEqual(['example.com/app:1']);
  });

  it('removes the image once its last record is gone, and ignores names it never knew', () => {
    const store = new ImageStore();
    store.put(entry());
    const gone = store.forgetNames([...store.names(), 'other.example/x:1']);
    expect(gone.map((e) => e.id)).toEqual([ID]);
    expect(store.list()).toEqual([]);
    expect(store.resolve(ID)).toBeUndefined();
    expect(store.names()).toEqual([]);
  });
});
