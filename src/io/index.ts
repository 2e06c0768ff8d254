export { createFifo, openFifoReader, openFifoWriter, removeFifos, FifoReader } from './fifo';
export { TaskIo, type TaskIoOptions, type TaskIoPaths } from './task-io';
export {
  CriLogWriter,
  CriClock,
  formatRfc3339Nano,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_PARTIAL_FLUSH_MS,
  type CriLogWriterOptions,
  type CriLogStats,
  type LogSource,
  type StreamName,
} from './cri-log';
export { CappedBuffer, captureCapped, type CapturedOutput } from './capped-buffer';
