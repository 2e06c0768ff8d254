export { createFifo, fifoDirectory, keepSpareFifos, openFifoReader, openFifoWriter, removeFifos, FifoReader, SPARE_FIFO_PREFIX } from './fifo';
export { TaskIo, type TaskIoOptions, type TaskIoPaths } from './task-io';
export { CriClock, formatRfc3339Nano } from './cri-log-clock';
export {
  CriLogWriter,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_PARTIAL_FLUSH_MS,
  type CriLogWriterOptions,
  type CriLogStats,
  type LogSource,
  type StreamName,
} from './cri-log-writer';
export { CappedBuffer, captureCapped, type CapturedOutput } from './capped-buffer';
