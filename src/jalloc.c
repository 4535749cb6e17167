/*
 * jalloc.c: see jalloc.h. One process, one thread: the lists have no lock.
 */
#include <malloc.h>
#include <stdlib.h>

#include <jansson.h>

#include "jalloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define JALLOC_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JALLOC_OFF 1
#endif
#endif

/*
 * Blocks are plain malloc blocks of 16-byte classes up to 256 bytes, with
 * no header: a block's class comes back from malloc_usable_size(), so
 * jansson's blocks may still be freed by free() (the text json_dumps()
 * returns is), and any malloc block of a class size may join a list.
 */
#define JALLOC_STEP 16
#define JALLOC_CLASSES 16
/* Free blocks kept per class: at most about 1 MiB in all. */
#define JALLOC_KEEP 512

#ifndef JALLOC_OFF
struct jalloc_block {
    struct jalloc_block *next; /* while free */
};

static struct jalloc_block *jalloc_lists[JALLOC_CLASSES];
static unsigned jalloc_kept[JALLOC_CLASSES];

static void *
jalloc_malloc(size_t n)
{
    size_t cls = n == 0 ? 0 : (n - 1) / JALLOC_STEP;
    struct jalloc_block *b;

    if (cls >= JALLOC_CLASSES) {
        return malloc(n);
    }
    b = jalloc_lists[cls];
    if (b == NULL) {
        return malloc((cls + 1) * JALLOC_STEP);
    }
    jalloc_lists[cls] = b->next;
    jalloc_kept[cls]--;
    return b;
}

static void
jalloc_free(void *p)
{
    size_t usable, cls;
    struct jalloc_block *b = p;

    if (p == NULL) {
        return;
    }
    /* The largest class whose size fits the block. */
    usable = malloc_usable_size(p);
    cls = usable / JALLOC_STEP;
    if (cls == 0 || cls > JALLOC_CLASSES || jalloc_kept[cls - 1] >= JALLOC_KEEP) {
        free(p);
        return;
    }
    cls--;
    b->next = jalloc_lists[cls];
    jalloc_lists[cls] = b;
    jalloc_kept[cls]++;
}

#endif

void
jalloc_install(void)
{
#ifndef JALLOC_OFF
    json_set_alloc_funcs(jalloc_malloc, jalloc_free);
#endif
}
