import { Global, Module } from '@nestjs/common';
import { ShutdownGate } from './shutdown-gate.js';

@Global()
@Module({ providers: [ShutdownGate], exports: [ShutdownGate] })
export class LifecycleModule {}
