#include "supervisor.h"
#include <stdio.h>
/* TEMPORARY placeholder during bring-up; replaced by the real module. */
int supervisor_main(int argc, char **argv)
{
    fprintf(stderr, "supervisor: not built yet\n");
    return 1;
}
