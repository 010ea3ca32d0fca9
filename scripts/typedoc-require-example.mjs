// @ts-check
/**
 * TypeDoc plugin (typedoc.json "plugin"): every name the package exports must
 * have a doc comment with an `@example`. A missing one is a warning, which
 * `treatWarningsAsErrors` turns into a failing `npm run docs`.
 */
import { Converter, ReflectionKind } from 'typedoc';

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_END, (context) => {
    for (const child of context.project.children ?? []) {
      if (child.kindOf(ReflectionKind.Reference)) continue; // documented where it points
      /** @type {any} */
      const node = child;
      const comment = child.comment ?? node.signatures?.[0]?.comment ?? node.type?.declaration?.signatures?.[0]?.comment;
      if (comment?.getTag('@example') === undefined) {
        app.logger.warn(`${child.name} (${ReflectionKind.singularString(child.kind)}) is exported but its doc comment has no @example`);
      }
    }
  });
}
