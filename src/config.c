/* TEMPORARY placeholder during bring-up; replaced by the real module. */
#include "config.h"
