#include "worker.h"
#include <stdio.h>
/* TEMPORARY placeholder during bring-up; replaced by the real module. */
int worker_main(int argc, char **argv)
{
    fprintf(stderr, "worker: not built yet\n");
    return 1;
}
