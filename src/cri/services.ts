import { ImageServiceServer, ImageServiceService, RuntimeServiceServer, RuntimeServiceService } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import { HandlerTable, implement } from './dispatch';
import type { CriServer } from './server';
import { runtimeConfigHandler } from './runtime-config';
import { statusHandler } from './status';
import { versionHandler } from './version';

/**
 * The CRI surface, one line per implemented RPC. Anything not listed here
 * answers UNIMPLEMENTED with the RPC's name.
 */
export function runtimeHandlers(deps: CriDeps): HandlerTable<RuntimeServiceServer> {
  return {
    version: versionHandler(deps),
    status: statusHandler(deps),
    runtimeConfig: runtimeConfigHandler(deps),
  };
}

export function imageHandlers(_deps: CriDeps): HandlerTable<ImageServiceServer> {
  return {};
}

export function registerCriServices(server: CriServer, deps: CriDeps, drain: AbortSignal): void {
  server.addService(
    RuntimeServiceService,
    implement(RuntimeServiceService, 'runtime.v1.RuntimeService', runtimeHandlers(deps), deps.logger, drain),
  );
  server.addService(
    ImageServiceService,
    implement(ImageServiceService, 'runtime.v1.ImageService', imageHandlers(deps), deps.logger, drain),
  );
}
