/** The liveness answer, for the OpenAPI document only (see src/http/api-docs.models.ts). */
import { ApiProperty, ApiSchema } from '@nestjs/swagger';

@ApiSchema({ name: 'Liveness' })
export class LivenessModel {
  @ApiProperty({ enum: ['ok'] })
  status!: 'ok';
}
