#include "enqueue.h"
#include <stdio.h>
/* TEMPORARY placeholder during bring-up; replaced by the real module. */
int enqueue_main(int argc, char **argv)
{
    fprintf(stderr, "enqueue: not built yet\n");
    return 1;
}
