/*
 * jalloc.h: jansson's memory, kept on free lists.
 *
 * A placement builds and frees about 180 small jansson blocks (objects,
 * their tables, keys, strings). In such bursts glibc's per-thread cache
 * (seven blocks per size) overflows and most of them take malloc's slow
 * path. jalloc_install() gives jansson size-classed free lists instead.
 * Not installed under AddressSanitizer, which must see every block.
 */
#ifndef CG_JALLOC_H
#define CG_JALLOC_H

/* Call first thing in main(). Blocks stay plain malloc blocks: text from
 * json_dumps() is still freed with free(). */
void jalloc_install(void);

#endif
